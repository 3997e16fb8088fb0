//! Which `__consumer_offsets` partition holds a group: Kafka's own rule, so that a group keeps
//! its partition when Kafka tooling reasons about it.

/// Java's `String.hashCode` over UTF-16 code units.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// `Utils.abs(groupId.hashCode()) % partitions`, where Kafka's `abs` maps `MIN_VALUE` to 0.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    assert!(partitions > 0);
    let h = java_hash(key);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java() {
        // "group".hashCode() == 98629247 in Java.
        assert_eq!(java_hash("group"), 98_629_247);
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        assert_eq!(java_hash(""), 0);
        // Negative hashes are made positive, as Kafka's Utils.abs does.
        assert!(java_hash("polygenelubricants") == i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
