//! The seed's service roles. In this version they are members with a role label that report
//! health; their real work (gateway routing, log production and consumption) comes later and
//! will live beside this table, one module per role.

/// One role of the local cluster started by `vigil up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSpec {
    /// Role name, also the member id in `vigil up`.
    pub name: &'static str,
    /// The seed's HTTP port for this service.
    pub http_port: u16,
    /// Offset of its gossip port from the gossip base port.
    pub gossip_offset: u16,
    /// Whether it bootstraps the cluster (the others join through it).
    pub bootstrap: bool,
    /// What the service does in the seed.
    pub summary: &'static str,
}

/// The seed's four services, in start order: the bootstrap node first.
pub const LOCAL_CLUSTER: [RoleSpec; 4] = [
    RoleSpec {
        name: "coordinator",
        http_port: 8081,
        gossip_offset: 1,
        bootstrap: true,
        summary: "failure detection, gossip, quorum",
    },
    RoleSpec {
        name: "gateway",
        http_port: 8080,
        gossip_offset: 0,
        bootstrap: false,
        summary: "cluster status queries",
    },
    RoleSpec {
        name: "producer",
        http_port: 8082,
        gossip_offset: 2,
        bootstrap: false,
        summary: "log production",
    },
    RoleSpec {
        name: "consumer",
        http_port: 8083,
        gossip_offset: 3,
        bootstrap: false,
        summary: "log consumption",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_role_bootstraps_and_ports_are_distinct() {
        assert_eq!(LOCAL_CLUSTER.iter().filter(|r| r.bootstrap).count(), 1);
        assert!(
            LOCAL_CLUSTER[0].bootstrap,
            "the bootstrap node starts first"
        );
        let mut http: Vec<u16> = LOCAL_CLUSTER.iter().map(|r| r.http_port).collect();
        let mut gossip: Vec<u16> = LOCAL_CLUSTER.iter().map(|r| r.gossip_offset).collect();
        http.sort();
        http.dedup();
        gossip.sort();
        gossip.dedup();
        assert_eq!((http.len(), gossip.len()), (4, 4));
    }
}
