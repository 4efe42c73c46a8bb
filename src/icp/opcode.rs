use std::fmt;

/// An assigned ICP opcode (RFC 2186 §1). Values the RFC leaves unassigned
/// have no variant, so holding an `Opcode` means the value was meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    Invalid = 0,
    Query = 1,
    Hit = 2,
    Miss = 3,
    Err = 4,
    SEcho = 10,
    DEcho = 11,
    MissNoFetch = 21,
    Denied = 22,
    HitObj = 23,
}

impl Opcode {
    /// The opcode for a wire value, or `None` for values RFC 2186 leaves
    /// unassigned (5..=9, 12..=20, 24..).
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0 => Opcode::Invalid,
            1 => Opcode::Query,
            2 => Opcode::Hit,
            3 => Opcode::Miss,
            4 => Opcode::Err,
            10 => Opcode::SEcho,
            11 => Opcode::DEcho,
            21 => Opcode::MissNoFetch,
            22 => Opcode::Denied,
            23 => Opcode::HitObj,
            _ => return None,
        })
    }

    /// The RFC 2186 name, so logs read the same as Squid's documentation.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Invalid => "ICP_OP_INVALID",
            Opcode::Query => "ICP_OP_QUERY",
            Opcode::Hit => "ICP_OP_HIT",
            Opcode::Miss => "ICP_OP_MISS",
            Opcode::Err => "ICP_OP_ERR",
            Opcode::SEcho => "ICP_OP_SECHO",
            Opcode::DEcho => "ICP_OP_DECHO",
            Opcode::MissNoFetch => "ICP_OP_MISS_NOFETCH",
            Opcode::Denied => "ICP_OP_DENIED",
            Opcode::HitObj => "ICP_OP_HIT_OBJ",
        }
    }

    /// Whether a cache sends this in answer to a query. The echo opcodes are
    /// excluded: they answer probes of the source/destination, not queries.
    #[must_use]
    pub fn is_reply(self) -> bool {
        matches!(self, Opcode::Hit | Opcode::Miss | Opcode::Err | Opcode::MissNoFetch | Opcode::Denied | Opcode::HitObj)
    }

    /// Whether the replying cache holds the object.
    #[must_use]
    pub fn is_hit(self) -> bool {
        matches!(self, Opcode::Hit | Opcode::HitObj)
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
