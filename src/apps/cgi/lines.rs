//! A script's stderr as log lines: one write per line, each naming the script file, bounded.
//!
//! The FastCGI error stream makes one FCGI_STDERR record per write, and a web server logs
//! one record as one message: so the bytes a script writes are cut at newlines (and at
//! [`MAX_LINE`] bytes for a line without one), and each line leaves in a single write as
//! `cgate: cgi: FILE: LINE\n`. Empty lines are dropped. At most `max` bytes of the script's
//! output are logged per request; one note says when the rest was dropped.

use std::io::Write;

/// The longest line kept whole: 4 KiB. A longer one is logged in pieces of this size.
pub const MAX_LINE: usize = 4096;

/// Line buffer of one script's stderr.
#[derive(Debug)]
pub struct LogLines {
    prefix: String,
    line: Vec<u8>,
    out: Vec<u8>,
    logged: usize,
    max: usize,
    noted: bool,
}

impl LogLines {
    /// Lines of the script `label` (its file), at most `max` bytes of them.
    pub fn new(label: &str, max: usize) -> LogLines {
        LogLines {
            prefix: format!("cgate: cgi: {label}: "),
            line: Vec::new(),
            out: Vec::new(),
            logged: 0,
            max,
            noted: false,
        }
    }

    /// Takes the next bytes of the script's stderr; writes each complete line.
    pub fn feed(&mut self, mut bytes: &[u8], errors: &mut dyn Write) {
        while !bytes.is_empty() {
            if self.logged >= self.max {
                if !self.noted {
                    self.noted = true;
                    self.flush(errors);
                    let note = format!(
                        "{}stderr longer than {} bytes; the rest is dropped\n",
                        self.prefix, self.max
                    );
                    let _ = errors.write_all(note.as_bytes());
                }
                return;
            }
            let limit = (MAX_LINE - self.line.len())
                .min(self.max - self.logged)
                .min(bytes.len());
            let (take, ends) = match bytes[..limit].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (limit, self.line.len() + limit == MAX_LINE),
            };
            self.line.extend_from_slice(&bytes[..take]);
            self.logged += take;
            bytes = &bytes[take..];
            if ends {
                self.emit(errors);
            }
        }
    }

    /// Writes a last line without its newline, if any.
    pub fn flush(&mut self, errors: &mut dyn Write) {
        if !self.line.is_empty() {
            self.emit(errors);
        }
    }

    /// Writes the buffered line (without its line end) in one write, unless it is blank.
    fn emit(&mut self, errors: &mut dyn Write) {
        let mut line = self.line.as_slice();
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            self.out.clear();
            self.out.extend_from_slice(self.prefix.as_bytes());
            self.out.extend_from_slice(line);
            self.out.push(b'\n');
            let _ = errors.write_all(&self.out);
        }
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each write call separately.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(pieces: &[&[u8]], max: usize) -> Vec<String> {
        let mut w = Writes::default();
        let mut l = LogLines::new("/srv/cgi/x.sh", max);
        for p in pieces {
            l.feed(p, &mut w);
        }
        l.flush(&mut w);
        w.0.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn one_write_per_line_whatever_the_pieces() {
        let want = [
            "cgate: cgi: /srv/cgi/x.sh: first line\n",
            "cgate: cgi: /srv/cgi/x.sh: second\n",
            "cgate: cgi: /srv/cgi/x.sh: tail\n",
        ];
        let whole: &[u8] = b"first line\r\n\nsecond\n  \ntail";
        assert_eq!(run(&[whole], 1 << 20), want);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(run(&bytes, 1 << 20), want);
        assert_eq!(
            run(&[b"first ", b"line\r\n\nsec", b"ond\n  \ntail"], 1 << 20),
            want
        );
    }

    #[test]
    fn long_lines_are_cut_and_the_total_is_bounded() {
        let long = vec![b'a'; MAX_LINE + 10];
        let got = run(&[&long, b"\n"], 1 << 20);
        let prefix = "cgate: cgi: /srv/cgi/x.sh: ";
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], format!("{prefix}{}\n", "a".repeat(MAX_LINE)));
        assert_eq!(got[1], format!("{prefix}{}\n", "a".repeat(10)));
        let got = run(&[b"12345\n67890\nabc", b"def\n"], 8);
        assert_eq!(
            got,
            [
                format!("{prefix}12345\n"),
                format!("{prefix}67\n"),
                format!("{prefix}stderr longer than 8 bytes; the rest is dropped\n"),
            ]
        );
    }
}
