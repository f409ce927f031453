//! From a destination to the applications whose addresses cover it, without
//! scanning the applications.
//!
//! - exact names: one hash lookup;
//! - wildcards: one lookup per proper parent suffix of the name (O(labels));
//! - IPs and CIDR blocks: one table per distinct prefix length and family
//!   (an IP is a /32 or /128); the address is masked to each length present
//!   and looked up (O(distinct prefix lengths)).
//!
//! Hash tables use FxHash. Their keys come from administrators at compile
//! time; request data only looks keys up, which cannot degrade a table.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::address::{canonical_net, Address};
use crate::model::Application;
use crate::request::Destination;

/// Indices into the policy's applications.
type AppList = SmallVec<[u32; 2]>;

#[derive(Debug, Default)]
pub(crate) struct DestinationIndex {
    names: FxHashMap<Box<str>, AppList>,
    wildcards: FxHashMap<Box<str>, AppList>,
    /// (mask, table of masked networks), longest prefix first.
    v4: Vec<(u32, FxHashMap<u32, AppList>)>,
    v6: Vec<(u128, FxHashMap<u128, AppList>)>,
}

fn push_unique(list: &mut AppList, app: u32) {
    if list.last() != Some(&app) {
        list.push(app);
    }
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl DestinationIndex {
    pub(crate) fn build(apps: &[Application]) -> DestinationIndex {
        let mut index = DestinationIndex::default();
        let mut v4: FxHashMap<u8, FxHashMap<u32, AppList>> = FxHashMap::default();
        let mut v6: FxHashMap<u8, FxHashMap<u128, AppList>> = FxHashMap::default();
        for (i, app) in apps.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            for address in &app.addresses {
                let net = match address {
                    Address::Domain(name) => {
                        push_unique(index.names.entry(name.as_str().into()).or_default(), i);
                        continue;
                    }
                    Address::Wildcard(suffix) => {
                        push_unique(index.wildcards.entry(suffix.as_str().into()).or_default(), i);
                        continue;
                    }
                    Address::Ip(ip) => IpNet::from(ip.to_canonical()),
                    Address::Cidr(net) => canonical_net(*net).trunc(),
                };
                match net {
                    IpNet::V4(n) => {
                        let len = n.prefix_len();
                        let key = u32::from(n.network()) & mask_v4(len);
                        push_unique(v4.entry(len).or_default().entry(key).or_default(), i);
                    }
                    IpNet::V6(n) => {
                        let len = n.prefix_len();
                        let key = u128::from(n.network()) & mask_v6(len);
                        push_unique(v6.entry(len).or_default().entry(key).or_default(), i);
                    }
                }
            }
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        v4.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        index.v4 = v4.into_iter().map(|(len, t)| (mask_v4(len), t)).collect();
        let mut v6: Vec<_> = v6.into_iter().collect();
        v6.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        index.v6 = v6.into_iter().map(|(len, t)| (mask_v6(len), t)).collect();
        index
    }

    /// Call `found` with every application whose addresses cover the
    /// destination. An application may be reported more than once.
    pub(crate) fn for_each_app(&self, dest: &Destination<'_>, mut found: impl FnMut(u32)) {
        if let Some(name) = dest.name {
            if let Some(apps) = self.names.get(name) {
                apps.iter().for_each(|&a| found(a));
            }
            if !self.wildcards.is_empty() {
                // Each proper parent suffix: "a.b.c" -> "b.c", "c".
                for (dot, _) in name.match_indices('.') {
                    if let Some(apps) = self.wildcards.get(&name[dot + 1..]) {
                        apps.iter().for_each(|&a| found(a));
                    }
                }
            }
        }
        for ip in dest.ips.iter().flatten() {
            match ip {
                IpAddr::V4(ip) => {
                    let bits = u32::from(*ip);
                    for (mask, table) in &self.v4 {
                        if let Some(apps) = table.get(&(bits & mask)) {
                            apps.iter().for_each(|&a| found(a));
                        }
                    }
                }
                IpAddr::V6(ip) => {
                    let bits = u128::from(*ip);
                    for (mask, table) in &self.v6 {
                        if let Some(apps) = table.get(&(bits & mask)) {
                            apps.iter().for_each(|&a| found(a));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(8), 0xff00_0000);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(mask_v6(64), u128::MAX << 64);
    }
}
