//! `icpquery carp`: which member owns each URL, with every member's score,
//! computed by the module's own CARP code.

use std::io::Write;

use mod_icpquery::engine::carp::{Member, Variant};
use mod_icpquery::engine::{carp_array, Peer};

/// Prints, for each URL, the owner and every member's rank, weight and
/// score.
pub fn print(out: &mut impl Write, peers: &[Peer], variant: Variant, urls: &[Vec<u8>]) -> std::io::Result<()> {
    let members: Vec<Member<'_>> = peers.iter().map(Peer::carp_member).collect();
    let array = carp_array(peers, variant);
    let names: Vec<String> = members.iter().map(|m| shown(m.name.as_bytes())).collect();
    let name_width = names.iter().map(String::len).max().unwrap_or(0).max("member".len());
    let left_out: Vec<&str> =
        members.iter().zip(&names).filter(|(m, _)| m.weight == 0).map(|(_, n)| n.as_str()).collect();
    writeln!(out, "CARP variant {variant}, {} member(s) in evaluation order (ascending weight):", array.len())?;
    for e in array.entries() {
        writeln!(
            out,
            "  {:<name_width$}  weight {:<4} load factor {:<20} multiplier {}",
            names[e.index], members[e.index].weight, e.load_factor, e.multiplier
        )?;
    }
    if !left_out.is_empty() {
        writeln!(out, "  left out (weight 0): {}", left_out.join(", "))?;
    }
    for url in urls {
        writeln!(out)?;
        writeln!(out, "{}", shown(url))?;
        let order = array.preference(url);
        match order.first() {
            Some(&i) => writeln!(out, "  owner: {} ({})", names[i], peers[i].addr)?,
            None => writeln!(out, "  owner: none (no member scores above 0)")?,
        }
        let mut scores = array.scores(url);
        // Failover order first, then the members that can never be chosen
        // in evaluation order.
        scores.sort_by_key(|(i, _)| order.iter().position(|o| o == i).unwrap_or(usize::MAX));
        writeln!(out, "  rank  {:<name_width$}  weight  score", "member")?;
        for (i, score) in scores {
            let rank = order.iter().position(|&o| o == i).map_or("-".to_string(), |r| (r + 1).to_string());
            writeln!(out, "  {rank:<4}  {:<name_width$}  {:<6}  {score}", names[i], members[i].weight)?;
        }
    }
    Ok(())
}

/// Bytes as text: valid UTF-8 without control characters as itself,
/// anything else escaped (`\xNN`), so one URL stays one line.
pub fn shown(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => bytes.escape_ascii().to_string(),
    }
}
