//! Kafka through librdkafka (`rdkafka`): the producer's publisher and the consumer group loop.
//!
//! Publisher: one record per event, keyed by service (so one service's events keep their
//! order in one partition), `acks=all`; an event counts as delivered (and its request gets
//! its 202) only when its record's delivery report came back, and the events whose report
//! failed are published again.
//!
//! Consumer: a consumer group with auto-commit off. Messages are gathered into a batch (up to
//! `services.producer.batch-size` or 200 ms), the batch is written to the store, and only
//! after the commit of that transaction are the offsets committed. A consumer killed between
//! the two re-reads the batch after restart; the store's idempotent insert drops the copies.
//!
//! Static membership (`services.kafka.static-membership`, on by default): the consumer joins
//! with `group.instance.id` = its node id (KIP-345, Kafka 2.3+). A consumer killed and
//! restarted under the same id is the same member to the broker and takes back its
//! partitions, on Kafka without a rebalance; one that stays away loses them to the others
//! after `services.kafka.session-timeout` (10 s). Node ids are unique in a cluster, so two
//! live consumers never claim the same instance id. Why on by default: with dynamic
//! membership a restarted consumer is a new member and must wait for the broker to give up
//! on the dead one. The broker of our tests, tansu 0.6, then never hands the partitions
//! over: when the dead member was the group's leader, the newcomer's SyncGroup (a follower's,
//! without assignments) is taken as the leader's once the dead leader's session expires,
//! and the generation completes with nothing assigned to anyone. As a static member the
//! newcomer is the leader itself and assigns. The session timeout is 10 s rather than
//! Kafka's minimum of 6 s because tansu holds every static member's JoinGroup and SyncGroup
//! for 3 s each and counts only heartbeats as contact: under 6 s + a heartbeat, each
//! rebalance would expire the member it is for. Off: a clean shutdown leaves the group at
//! once (a static member sends no LeaveGroup, so its partitions wait for the timeout).
//!
//! Topics are created on first use (the broker tansu does not auto-create them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::consumer::Consumer;
use super::event::{LogEvent, LogEventIn};
use super::producer::Outcome;
use crate::config::keys::ServicesSettings;

/// Creates `topic` unless it exists.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: u32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| e.to_string())?;
    let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| e.to_string())?;
    for r in results {
        match r {
            Ok(t) => info!(topic = %t, partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("cannot create topic {t}: {code}")),
        }
    }
    Ok(())
}

/// The producer's publisher.
pub struct KafkaSink {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    partitions: u32,
    topic_ready: bool,
}

impl KafkaSink {
    /// A publisher to `brokers`; connects lazily.
    pub fn new(brokers: &str, settings: &ServicesSettings) -> anyhow::Result<KafkaSink> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .set("linger.ms", "5")
            .create()?;
        Ok(KafkaSink {
            producer,
            brokers: brokers.to_string(),
            topic: settings.kafka_topic.clone(),
            partitions: settings.kafka_partitions,
            topic_ready: false,
        })
    }

    /// Publishes `batch` and waits for every record's delivery report; says which records
    /// the broker acknowledged (`acks=all`).
    pub async fn publish(&mut self, batch: &[LogEvent]) -> Outcome {
        if !self.topic_ready {
            if let Err(e) = ensure_topic(&self.brokers, &self.topic, self.partitions).await {
                return Outcome::none(batch.len(), e);
            }
            self.topic_ready = true;
        }
        let mut in_flight = Vec::with_capacity(batch.len());
        let mut first_error = None;
        for (i, e) in batch.iter().enumerate() {
            let payload = match serde_json::to_vec(&e.to_out()) {
                Ok(p) => p,
                Err(err) => {
                    first_error.get_or_insert(err.to_string());
                    break;
                }
            };
            let record = FutureRecord::to(&self.topic)
                .key(e.service.as_str())
                .payload(&payload);
            match self.producer.send_result(record) {
                Ok(f) => in_flight.push((i, f)),
                Err((err, _)) => {
                    first_error.get_or_insert(err.to_string());
                    break;
                }
            }
        }
        let mut delivered = vec![false; batch.len()];
        for (i, f) in in_flight {
            match f.await {
                Ok(Ok(_)) => delivered[i] = true,
                Ok(Err((err, _))) => {
                    first_error.get_or_insert(err.to_string());
                }
                Err(_) => {
                    first_error.get_or_insert("delivery report lost".into());
                }
            }
        }
        Outcome {
            delivered,
            error: first_error.map(|e| format!("kafka: {e}")),
        }
    }
}

/// Reads the topic in the consumer group and persists, committing offsets after the store.
///
/// `node_id` names this consumer in the group when `services.kafka.static-membership` is on
/// (see the module docs).
pub async fn consume_loop(
    node_id: String,
    consumer: Arc<Consumer>,
    brokers: String,
    settings: ServicesSettings,
    stop: CancellationToken,
) {
    let topic = settings.kafka_topic.clone();
    while let Err(e) = ensure_topic(&brokers, &topic, settings.kafka_partitions).await {
        warn!(error = %e, "cannot make sure the topic exists; retrying");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &brokers)
        .set("group.id", &settings.kafka_group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            settings.kafka_session_timeout.as_millis().to_string(),
        );
    if settings.kafka_static_membership {
        config.set("group.instance.id", &node_id);
    }
    let group: StreamConsumer = match config.create() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot create the Kafka consumer");
            return;
        }
    };
    if let Err(e) = group.subscribe(&[&topic]) {
        warn!(error = %e, "cannot subscribe");
        return;
    }
    info!(
        topic = %topic,
        group = %settings.kafka_group,
        instance = settings.kafka_static_membership.then_some(node_id.as_str()),
        "consuming"
    );
    let max = settings.batch_size;
    loop {
        let mut events: Vec<LogEvent> = Vec::new();
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let deadline = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(deadline);
        while events.len() < max {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = &mut deadline, if !offsets.is_empty() => break,
                m = group.recv() => match m {
                    Ok(m) => {
                        offsets.insert(m.partition(), m.offset());
                        let parsed = m
                            .payload()
                            .and_then(|p| serde_json::from_slice::<LogEventIn>(p).ok())
                            .and_then(|e| e.into_event(0, 0, "unknown").ok());
                        match parsed {
                            Some(e) => events.push(e),
                            None => warn!(partition = m.partition(), offset = m.offset(), "skipping a malformed message"),
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "kafka receive failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        // Durable first, offsets second: a crash between them means a redelivery, not a loss.
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = consumer.persist(&events).await {
            warn!(error = %e, "store write failed; offsets not committed, retrying");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            let _ = tpl.add_partition_offset(&topic, *partition, Offset::Offset(offset + 1));
        }
        if let Err(e) = group.commit(&tpl, CommitMode::Sync) {
            // The rows are stored; the worst case is a redelivery that inserts nothing.
            warn!(error = %e, "offset commit failed");
        }
    }
}
