//! How `lbmethod=bycache` ranks a balancer's members for one request, as
//! pure logic: first the members that answered HIT, in reply order; then
//! the members in the URL's CARP order (the owner first); last the members
//! ICP cannot speak for (dead by the module's own health), among which
//! byrequests decides. Which members may be chosen at all (usable, lbset,
//! hot standby, drained) is the balancer's business: it offers candidates
//! and the best-ranked one wins.

use super::lookup::{Outcome, Responder};

/// One member's rank; see [`Rank::beats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// Answered HIT; the number is its place among the HITs (0 first).
    Hit(usize),
    /// Its place in the URL's CARP order (0: the owner).
    Carp(usize),
    /// Neither: byrequests' arithmetic decides among such members.
    Fallback,
}

/// Why a member was chosen: `ICPQUERY_ROUTE` in the request's environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Hit,
    Carp,
    Fallback,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::Hit => "hit",
            Route::Carp => "carp",
            Route::Fallback => "fallback",
        }
    }
}

impl Rank {
    pub fn route(self) -> Route {
        match self {
            Rank::Hit(_) => Route::Hit,
            Rank::Carp(_) => Route::Carp,
            Rank::Fallback => Route::Fallback,
        }
    }

    /// Whether a member ranked `self` beats the best so far, ranked `best`;
    /// `None` between two fallbacks, where byrequests' arithmetic decides.
    pub fn beats(self, best: Rank) -> Option<bool> {
        match (self, best) {
            (Rank::Hit(a), Rank::Hit(b)) => Some(a < b),
            (Rank::Hit(_), _) => Some(true),
            (_, Rank::Hit(_)) => Some(false),
            (Rank::Carp(a), Rank::Carp(b)) => Some(a < b),
            (Rank::Carp(_), Rank::Fallback) => Some(true),
            (Rank::Fallback, Rank::Carp(_)) => Some(false),
            (Rank::Fallback, Rank::Fallback) => None,
        }
    }
}

/// Ranks `members` balancer members.
/// - `peer_of[m]`: the ICP peer (index into the lookup's cluster) that
///   stands for member `m`, if any;
/// - `outcome`: this request's lookup, if one ran;
/// - `dead(p)`: whether peer `p` is dead by the module's health;
/// - `carp_order`: the members in the URL's CARP order (owner first), as
///   [`carp::Array::preference`](super::carp::Array::preference) gives them.
///
/// A member that answered HIT ranks by reply order; otherwise a member not
/// known dead ranks by its CARP place; the rest fall back.
pub fn rank(
    members: usize,
    peer_of: &[Option<usize>],
    outcome: Option<&Outcome>,
    dead: impl Fn(usize) -> bool,
    carp_order: &[usize],
) -> Vec<Rank> {
    let mut ranks = vec![Rank::Fallback; members];
    for (place, &m) in carp_order.iter().enumerate() {
        let known_dead = peer_of.get(m).copied().flatten().is_some_and(&dead);
        if m < members && !known_dead {
            ranks[m] = Rank::Carp(place);
        }
    }
    let hits = outcome.into_iter().flat_map(|o| &o.replies).filter(|r| r.opcode.is_hit());
    let mut place = 0;
    for reply in hits {
        let Responder::Peer(p) = reply.responder else { continue };
        let member = peer_of.iter().position(|&q| q == Some(p));
        if let Some(m) = member.filter(|&m| !matches!(ranks[m], Rank::Hit(_))) {
            ranks[m] = Rank::Hit(place);
            place += 1;
        }
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Reply;
    use crate::icp::Opcode;
    use std::time::Duration;

    fn reply(peer: usize, opcode: Opcode) -> Reply {
        Reply { responder: Responder::Peer(peer), opcode, rtt: Duration::from_micros(100) }
    }

    /// The first usable member to answer HIT wins; without one, the CARP
    /// owner; a member beaten on one criterion never wins on a later one.
    fn best(ranks: &[Rank], usable: &[usize]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for &m in usable {
            if best.is_none_or(|b| ranks[m].beats(ranks[b]) == Some(true)) {
                best = Some(m);
            }
        }
        best
    }

    #[test]
    fn hits_in_reply_order_then_carp_order_then_fallback() {
        let peer_of = [Some(0), Some(1), Some(2), None];
        let outcome = Outcome {
            replies: vec![reply(2, Opcode::Miss), reply(1, Opcode::Hit), reply(0, Opcode::HitObj)],
            ..Outcome::default()
        };
        let carp_order = [2, 0, 3, 1];
        let ranks = rank(4, &peer_of, Some(&outcome), |_| false, &carp_order);
        assert_eq!(ranks, [Rank::Hit(1), Rank::Hit(0), Rank::Carp(0), Rank::Carp(2)]);
        assert_eq!(best(&ranks, &[0, 1, 2, 3]), Some(1), "the first HIT");
        assert_eq!(best(&ranks, &[0, 2, 3]), Some(0), "the next HIT when the first is not usable");
        assert_eq!(best(&ranks, &[2, 3]), Some(2), "the CARP owner among the usable");
        assert_eq!(best(&ranks, &[3]), Some(3));
    }

    #[test]
    fn dead_members_fall_back_and_a_member_without_icp_stays_in_carp() {
        let peer_of = [Some(0), Some(1), None];
        let ranks = rank(3, &peer_of, None, |p| p == 0, &[0, 1, 2]);
        assert_eq!(ranks, [Rank::Fallback, Rank::Carp(1), Rank::Carp(2)]);
        assert_eq!(best(&ranks, &[0, 1, 2]), Some(1), "a dead owner is passed over");
        assert_eq!(ranks[0].beats(Rank::Fallback), None, "byrequests decides between fallbacks");
        assert_eq!(Rank::Fallback.route().label(), "fallback");
    }

    #[test]
    fn hits_from_peers_of_no_member_and_members_outside_the_carp_order() {
        let peer_of = [Some(0), Some(2)];
        let outcome = Outcome {
            replies: vec![reply(1, Opcode::Hit), reply(2, Opcode::Hit), reply(0, Opcode::Hit)],
            ..Outcome::default()
        };
        let ranks = rank(2, &peer_of, Some(&outcome), |_| false, &[]);
        assert_eq!(ranks, [Rank::Hit(1), Rank::Hit(0)], "peer 1 stands for no member");
        assert_eq!(rank(2, &peer_of, None, |_| false, &[1]), [Rank::Fallback, Rank::Carp(0)], "weight 0");
    }
}
