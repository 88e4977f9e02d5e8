//! Listen queues in the report: each pod's own ListenOverflows and ListenDrops, and per
//! listening socket its drop counter and accept queue.

use std::{collections::HashMap, net::IpAddr};

use super::Key;
use crate::{
    event::Event,
    family::Family,
    frames::Frame,
    report::{
        section::{self, Context, Section},
        text::table,
        timeline::Timeline,
        Report,
    },
};

#[derive(Debug, Default, serde::Serialize)]
pub struct ListenDropCount {
    pub pod: String,
    pub netns: u32,
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ListenOverflowCount {
    pub pod: String,
    pub netns: u32,
    pub addr: IpAddr,
    pub port: u16,
    pub drops: u64,
    /// Accept queue length and limit at the last poll.
    pub queue: u32,
    pub max_queue: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct Listen {
    /// Exact, from each pod's own ListenOverflows and ListenDrops.
    pub listen_drops: Vec<ListenDropCount>,
    /// Per listening socket, from its own drop counter; largest first.
    pub listen_overflows: Vec<ListenOverflowCount>,
}

#[derive(Default)]
pub struct Part {
    listen: HashMap<Key, ListenOverflowCount>,
}

impl section::Part for Part {
    type Section = Listen;

    fn frame(&mut self, frame: &Frame, _: &Timeline) {
        let Frame::Event(Event::ListenOverflow(l)) = frame else { return };
        let row = self.listen.entry((l.netns, l.addr, l.port)).or_insert(ListenOverflowCount {
            pod: l.pod.clone(),
            netns: l.netns,
            addr: l.addr,
            port: l.port,
            drops: 0,
            queue: 0,
            max_queue: 0,
        });
        row.drops += u64::from(l.drops);
        (row.queue, row.max_queue) = (l.queue, l.max_queue);
    }

    fn section(&self, c: &Context) -> Listen {
        let mut listen_drops: Vec<ListenDropCount> = c
            .kernel
            .values()
            .filter(|k| k.listen_overflows + k.listen_drops > 0)
            .map(|k| ListenDropCount {
                pod: k.pod.clone(),
                netns: k.netns,
                listen_overflows: k.listen_overflows,
                listen_drops: k.listen_drops,
            })
            .collect();
        listen_drops
            .sort_by(|a, b| b.listen_drops.cmp(&a.listen_drops).then_with(|| a.pod.cmp(&b.pod)));
        let mut listen_overflows: Vec<ListenOverflowCount> =
            self.listen.values().filter(|l| c.in_scope(l.netns)).cloned().collect();
        listen_overflows.sort_by(|a, b| b.drops.cmp(&a.drops).then_with(|| a.pod.cmp(&b.pod)));
        Listen { listen_drops, listen_overflows }
    }
}

impl Section for Listen {
    /// After the drops: the accept-queue drops kfree_skb cannot see.
    const TEXT: u8 = 20;

    fn text(&self, r: &Report) -> String {
        // Listeners are polled with the drops family.
        if !r.ran(Family::Drops) {
            return String::new();
        }
        let mut s =
            "\nListen queue drops by pod (exact, the pod's ListenOverflows and ListenDrops)\n"
                .to_owned();
        let rows = self
            .listen_drops
            .iter()
            .map(|l| [l.pod.clone(), l.listen_overflows.to_string(), l.listen_drops.to_string()]);
        s += &table(["POD", "OVERFLOWS", "DROPS"], rows);
        s += "By listening socket (its own drop counter, which also counts a few other discards)\n";
        let rows = self.listen_overflows.iter().map(|l| {
            [
                l.pod.clone(),
                format!("{}:{}", l.addr, l.port),
                l.drops.to_string(),
                format!("{}/{}", l.queue, l.max_queue),
            ]
        });
        s += &table(["POD", "LISTENER", "DROPPED", "ACCEPT QUEUE"], rows);
        s
    }

    fn pods(&self) -> Vec<&str> {
        self.listen_overflows.iter().map(|l| l.pod.as_str()).collect()
    }
}
