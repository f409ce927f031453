//! Device posture: what an agent reports about its endpoint, what a tenant
//! requires, and whether a device is compliant.

use serde::{Deserialize, Serialize};

/// What the agent reports, on enrolment and then periodically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Posture {
    /// `linux`, `macos`, `windows`.
    pub os: String,
    pub os_version: String,
    pub hostname: String,
    pub agent_version: String,
    pub kernel: Option<String>,
    /// Whether the root file system is encrypted; unknown when absent.
    pub disk_encryption: Option<bool>,
    /// Whether a host firewall is active; unknown when absent.
    pub firewall: Option<bool>,
    /// Whether automatic screen locking is on; unknown when absent.
    pub screen_lock: Option<bool>,
}

/// What a tenant requires of a device. Nothing required: every device is compliant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostureRequirements {
    #[serde(default)]
    pub disk_encryption: bool,
    #[serde(default)]
    pub firewall: bool,
    #[serde(default)]
    pub screen_lock: bool,
    /// Operating systems allowed (`linux`, ...); empty: any.
    #[serde(default)]
    pub os: Vec<String>,
    /// Lowest agent version allowed, such as `0.1.0`.
    #[serde(default)]
    pub min_agent_version: Option<String>,
}

impl PostureRequirements {
    /// The requirements `posture` fails, as sentences; empty means compliant.
    /// An unknown value (not reported) fails a requirement on it.
    pub fn failures(&self, posture: &Posture) -> Vec<String> {
        let mut out = Vec::new();
        if self.disk_encryption && posture.disk_encryption != Some(true) {
            out.push("the disk is not encrypted (or the agent cannot tell)".to_owned());
        }
        if self.firewall && posture.firewall != Some(true) {
            out.push("no active firewall (or the agent cannot tell)".to_owned());
        }
        if self.screen_lock && posture.screen_lock != Some(true) {
            out.push("screen locking is off (or the agent cannot tell)".to_owned());
        }
        if !self.os.is_empty() && !self.os.iter().any(|o| o.eq_ignore_ascii_case(&posture.os)) {
            out.push(format!(
                "the operating system {:?} is not one of {}",
                posture.os,
                self.os.join(", ")
            ));
        }
        if let Some(min) = &self.min_agent_version {
            if version_key(&posture.agent_version) < version_key(min) {
                out.push(format!(
                    "the agent version {} is older than {min}",
                    posture.agent_version
                ));
            }
        }
        out
    }

    pub fn is_met_by(&self, posture: &Posture) -> bool {
        self.failures(posture).is_empty()
    }
}

/// `1.2.10` → [1, 2, 10]; anything not a number counts as 0.
fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+']).map(|p| p.parse().unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posture() -> Posture {
        Posture {
            os: "linux".into(),
            agent_version: "0.2.10".into(),
            disk_encryption: Some(true),
            firewall: None,
            ..Default::default()
        }
    }

    #[test]
    fn nothing_required_means_compliant() {
        assert!(PostureRequirements::default().is_met_by(&Posture::default()));
    }

    #[test]
    fn unknown_fails_a_requirement() {
        let req = PostureRequirements {
            disk_encryption: true,
            firewall: true,
            ..Default::default()
        };
        let f = req.failures(&posture());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("firewall"));
    }

    #[test]
    fn os_and_version() {
        let req = PostureRequirements {
            os: vec!["Linux".into()],
            min_agent_version: Some("0.2.9".into()),
            ..Default::default()
        };
        assert!(req.is_met_by(&posture()));
        let req = PostureRequirements {
            os: vec!["macos".into()],
            min_agent_version: Some("0.10.0".into()),
            ..Default::default()
        };
        assert_eq!(req.failures(&posture()).len(), 2);
    }
}
