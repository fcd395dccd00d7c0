//! Each metric declared once: [`metric_set!`] takes a struct whose fields say their metric's
//! name, help and type on one line, and writes the struct and the function that registers
//! every field, in the order written (the order of `/metrics`).

use prometheus_client::registry::{Metric, Registry};

/// How a field of a metric set is made: registering its metric (or metrics) in the
/// registry, or not (state kept beside the metrics).
pub(crate) trait Declare<T>: FnOnce(&mut Registry) -> T {}

impl<T, F: FnOnce(&mut Registry) -> T> Declare<T> for F {}

/// A metric of its type's default, registered as `name` with `help`.
pub(crate) fn metric<M: Metric + Clone + Default>(
    name: &'static str,
    help: &'static str,
) -> impl Declare<M> {
    metric_from(name, help, M::default())
}

/// `metric`, registered as `name` with `help` (histograms with their buckets, families with a
/// constructor).
pub(crate) fn metric_from<M: Metric + Clone>(
    name: &'static str,
    help: &'static str,
    metric: M,
) -> impl Declare<M> {
    move |registry: &mut Registry| {
        registry.register(name, help, metric.clone());
        metric
    }
}

/// A field that is no metric: `value` as it is.
pub(crate) fn unregistered<T>(value: T) -> impl Declare<T> {
    move |_: &mut Registry| value
}

/// Declares a set of metrics, one field each:
///
/// ```text
/// metric_set! {
///     /// Doc of the set.
///     pub struct Set {
///         field: Type = metric("name", "help"),
///         other: Type = metric("name", "help") => stats.field_of_the_core_stats,
///     }
/// }
/// ```
///
/// and writes the struct and `fn declare(registry: &mut Registry) -> Self`, which makes each
/// field from its [`Declare`] in the order written. With `=> stats.FIELD` (a counter that
/// follows the core's `Stats`) it also writes `fn follow_stats(&self, now, before)`, which
/// adds to each such counter what its `Stats` field gained.
macro_rules! metric_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $set:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty = $declare:expr $(=> stats.$stat:ident)?),*
            $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $set {
            $($(#[$fmeta])* $fvis $field: $ty,)*
        }

        impl $set {
            /// Makes every field, registering the metrics in `registry` in the order declared.
            fn declare(registry: &mut prometheus_client::registry::Registry) -> Self {
                $(let $field: $ty = ($declare)(&mut *registry);)*
                $set { $($field),* }
            }

            metric_set!(@stats $($field $(=> $stat)?),*);
        }
    };
    (@stats $($field:ident),*) => {};
    (@stats $($field:ident $(=> $stat:ident)?),*) => {
        /// Adds to each counter that follows the core's `Stats` what its field gained
        /// from `before` to `now`.
        fn follow_stats(&self, now: &membership::Stats, before: &membership::Stats) {
            $($(self.$field.inc_by(now.$stat.saturating_sub(before.$stat));)?)*
        }
    };
}

pub(crate) use metric_set;
