//! Kafka through librdkafka (`rdkafka`): the producer's publisher ([`crate::producer::kafka`])
//! and the consumer group loop ([`crate::consumer::kafka`]), and the topic both use.
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

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tracing::info;

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
