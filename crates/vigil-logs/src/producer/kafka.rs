//! The producer's Kafka publisher (feature `kafka`): one record per event, keyed by service,
//! `acks=all`; why and how, with the consumer's half: [`crate::kafka`].

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use vigil::config::keys::ServicesSettings;

use super::Outcome;
use crate::event::LogEvent;
use crate::kafka::ensure_topic;

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
