//! What the module remembers for one request, in the request's own pool
//! (httpd's per-request module configuration), so concurrent requests in one
//! process never see each other's answers.

use super::safe::Request;
use crate::engine::choice::Rank;

#[derive(Default)]
pub struct RequestState {
    /// The maps' state: one entry for the server's own maps (0) and one per
    /// cache group (k + 1).
    pub maps: Vec<MapState>,
    /// bycache's choices, one per balancer the request went through.
    pub choices: Vec<Choice>,
}

#[derive(Default)]
pub struct MapState {
    /// Every address that gave a valid reply to this request's queries.
    pub answered: Vec<std::net::IpAddr>,
    /// Whether `icpquerymap` ran in this request at all.
    pub queried: bool,
}

/// How bycache ranked a balancer's members for this request; kept so that
/// mod_proxy's retries after a failed member reuse the same answers.
pub struct Choice {
    /// `balancer://NAME`.
    pub balancer: Vec<u8>,
    /// The URL the caches were asked about.
    pub key: Vec<u8>,
    /// One per member, by position.
    pub ranks: Vec<Rank>,
}

impl RequestState {
    /// The request's state, made on first use.
    pub fn of<'r>(r: Request<'r>) -> &'r mut RequestState {
        // SAFETY: the module's request slot holds nothing but a RequestState
        // (this is the only place that uses it).
        unsafe { r.module_state::<RequestState>() }
    }

    pub fn map(&mut self, set: usize) -> &mut MapState {
        if self.maps.len() <= set {
            self.maps.resize_with(set + 1, MapState::default);
        }
        &mut self.maps[set]
    }

    pub fn choice(&self, balancer: &[u8]) -> Option<&Choice> {
        self.choices.iter().find(|c| c.balancer == balancer)
    }
}
