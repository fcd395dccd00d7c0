use std::time::Duration;
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let cfg = sim::SimConfig::new(n, 1).with_core(membership::Config::for_cluster_size(n));
    let mut s = sim::Sim::new(cfg).unwrap();
    let mut last = std::collections::BTreeMap::new();
    for t in 1..=20 {
        let w = std::time::Instant::now();
        s.run_until(Duration::from_secs(t)).unwrap();
        let mut tot: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
        let mut syncs = 0;
        for i in 0..n {
            if let Some(nd) = s.node(i) {
                syncs += nd.stats().syncs_started;
                for (k, v) in &nd.stats().sent_by_kind {
                    let e = tot.entry(k).or_default();
                    e.0 += v.0;
                    e.1 += v.1;
                }
            }
        }
        let d: Vec<String> = tot
            .iter()
            .map(|(k, v)| {
                let p = last.get(k).copied().unwrap_or((0, 0));
                format!("{k}:{}/{}B", v.0 - p.0, (v.1 - p.1) / n as u64)
            })
            .collect();
        println!(
            "t={t} wall={:?} syncs={syncs} conv={} {}",
            w.elapsed(),
            s.all_see_all_alive(),
            d.join(" ")
        );
        last = tot.iter().map(|(k, v)| (*k, *v)).collect();
    }
}
