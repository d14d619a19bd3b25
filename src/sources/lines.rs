//! Source helper: reading a line with a cap, so one hostile line (a 200 MB field, a file with
//! no newline) costs at most the cap in memory, and the rest of the file still reads.

use std::io::BufRead;

/// Reads one line (its `\n` included), appended to `buf`, but keeps at most `cap` bytes of it;
/// the rest of the line is consumed unread. Returns (bytes consumed, whether the line was cut).
pub(crate) fn read_line_capped<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut total, mut cut, start) = (0usize, false, buf.len());
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = cap.saturating_sub(buf.len() - start);
        if take > room {
            cut = true;
            buf.extend_from_slice(&avail[..room]);
        } else {
            buf.extend_from_slice(&avail[..take]);
        }
        r.consume(take);
        total += take;
        if done {
            break;
        }
    }
    Ok((total, cut))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_line_is_cut_and_the_next_one_reads_whole() {
        let data = format!("{}\nshort\n", "x".repeat(10_000));
        let mut r = std::io::BufReader::with_capacity(64, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(
            super::read_line_capped(&mut r, &mut buf, 100).unwrap(),
            (10_001, true)
        );
        assert_eq!(buf.len(), 100);
        buf.clear();
        assert_eq!(
            super::read_line_capped(&mut r, &mut buf, 100).unwrap(),
            (6, false)
        );
        assert_eq!(buf, b"short\n");
    }

    #[test]
    fn lines_appended_to_one_buffer_are_each_capped_on_their_own() {
        let data = format!("{}\n{}\nshort\n", "a".repeat(90), "b".repeat(500));
        let mut r = std::io::BufReader::with_capacity(64, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(
            super::read_line_capped(&mut r, &mut buf, 100).unwrap(),
            (91, false)
        );
        assert_eq!(
            super::read_line_capped(&mut r, &mut buf, 100).unwrap(),
            (501, true),
            "its own 100 bytes, not what is left of the buffer's"
        );
        assert_eq!(buf.len(), 191);
        assert_eq!(
            super::read_line_capped(&mut r, &mut buf, 100).unwrap(),
            (6, false)
        );
        assert!(buf.ends_with(b"short\n"));
    }
}
