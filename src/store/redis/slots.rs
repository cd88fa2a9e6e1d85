//! Redis Cluster slots, computed here: a script may touch the keys of one
//! slot only, so a card's event goes to a stream in the card's own slot.
//! That stream's key needs a hash tag that lands in that slot; the table of
//! one such tag per slot is found once, by trying short tags in order.

use std::sync::OnceLock;

pub const SLOTS: usize = 16384;

/// CRC16-XMODEM, the checksum Redis Cluster places keys by.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key whose hash tag is `tag` (or of a key without braces
/// that is `tag` itself).
pub fn slot_of_tag(tag: &str) -> u16 {
    crc16(tag.as_bytes()) % SLOTS as u16
}

/// The slot of any key, by the cluster's rule: the text between the first
/// `{` and the next `}` when that is not empty, else the whole key.
pub fn slot_of_key(key: &str) -> u16 {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return slot_of_tag(&key[open + 1..open + 1 + len]);
            }
        }
    }
    slot_of_tag(key)
}

/// For every slot, a short hash tag that lands in it.
pub fn tag_for_slot(slot: u16) -> &'static str {
    static TABLE: OnceLock<Vec<String>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table: Vec<Option<String>> = vec![None; SLOTS];
        let mut missing = SLOTS;
        // Every slot is hit after ~170,000 tries (CRC16 spreads decimal
        // strings evenly); this takes a few ms once.
        let mut n: u64 = 0;
        while missing > 0 {
            let tag = format!("s{n}");
            let slot = usize::from(slot_of_tag(&tag));
            if table[slot].is_none() {
                table[slot] = Some(tag);
                missing -= 1;
            }
            n += 1;
        }
        table.into_iter().flatten().collect()
    });
    &table[usize::from(slot) % SLOTS]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_specification() {
        // The reference value of the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Slots that `CLUSTER KEYSLOT` answers.
        assert_eq!(slot_of_key("foo"), 12182);
        assert_eq!(slot_of_key("{user1000}.following"), slot_of_key("user1000"));
        assert_eq!(slot_of_key("foo{}{bar}"), slot_of_tag("foo{}{bar}"));
    }

    #[test]
    fn every_slot_has_a_tag_in_it() {
        for slot in 0..SLOTS as u16 {
            assert_eq!(slot_of_tag(tag_for_slot(slot)), slot);
        }
    }
}
