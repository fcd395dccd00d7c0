//! The consumer's Kafka group loop (feature `kafka`): offsets committed only after the store
//! committed, static membership by node id; why and how, with the producer's half:
//! [`crate::kafka`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil::config::keys::ServicesSettings;

use super::Consumer;
use crate::event::{LogEvent, LogEventIn};
use crate::kafka::ensure_topic;

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
