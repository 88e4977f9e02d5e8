//! The linklocal family's series: packets per pod and service, label
//! `direction proto address port`.

use super::{label, Destination};
use crate::{
    frames::Snapshot,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    /// Packets to and from link-local services.
    pub const LINK_LOCAL: Metric = Metric::counted(610, "link_local");
    /// DNS packets to and from the cluster DNS IPs (`--dns-ip`).
    pub const CLUSTER_DNS: Metric = Metric::counted(611, "cluster_dns");
}

pub fn totals(s: &Snapshot, add: &mut Add) {
    for l in &s.rows.linklocal {
        let metric = match l.destination {
            Destination::LinkLocal => Metric::LINK_LOCAL,
            Destination::ClusterDns => Metric::CLUSTER_DNS,
        };
        add(metric, Subject::Netns(l.netns), label(l), l.packets);
    }
}
