//! Listings (LIST, NLST, MLSD and MLST's line) of a directory whose names are arbitrary
//! bytes, CR, LF, NUL, `;` and leading spaces included, as a local user may create them.
//!
//! Invariants: nothing panics; every entry gives exactly one line ending in CRLF, with no
//! other CR or LF, so that a name can never forge a line of its own in a client's view;
//! an MLSD line has its facts, then one space, then the name.
#![no_main]

use std::path::Path;

use arbitrary::Arbitrary;
use ftpdlib::filesystem::{Filesystem, MemoryFilesystem, WriteMode};
use ftpdlib::listing::{ListFormat, Listing, MLSX_DEFAULT_FACTS};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    names: Vec<(Vec<u8>, bool)>,
    gmt: bool,
    now: i64,
}

fuzz_target!(|input: Input| {
    use std::os::unix::ffi::OsStrExt;
    let fs = MemoryFilesystem::new();
    let mut made = 0usize;
    for (name, dir) in input.names.iter().take(64) {
        // A name is anything but '/' and NUL (the kernel's rule), and not . or ..
        if name.is_empty()
            || name.contains(&b'/')
            || name.contains(&0)
            || name == b"."
            || name == b".."
        {
            continue;
        }
        let mut path = b"/".to_vec();
        path.extend_from_slice(name);
        let path = Path::new(std::ffi::OsStr::from_bytes(&path));
        let ok = if *dir {
            fs.mkdir(path).is_ok()
        } else {
            fs.open_write(path, WriteMode::CreateNew).is_ok()
        };
        made += usize::from(ok);
    }
    for format in [ListFormat::List, ListFormat::Nlst, ListFormat::Mlsd] {
        let facts = MLSX_DEFAULT_FACTS.to_vec();
        let listing = Listing::open(
            &fs,
            Path::new("/"),
            format,
            facts,
            None,
            input.now,
            input.gmt,
        )
        .expect("the root lists");
        let out = listing.collect_all().expect("memory never fails");
        let lines = out.split_inclusive(|&b| b == b'\n').collect::<Vec<_>>();
        for line in &lines {
            assert!(
                line.ends_with(b"\r\n"),
                "{format:?}: line without CRLF {line:?}"
            );
            let body = &line[..line.len() - 2];
            assert!(!body.contains(&b'\r'), "{format:?}: CR inside {line:?}");
            if format == ListFormat::Mlsd {
                let facts = body.split(|&b| b == b' ').next().unwrap_or(&[]);
                assert!(facts.ends_with(b";"), "{line:?}");
            }
        }
        assert_eq!(lines.len(), made, "{format:?}: one line per entry");
    }
});
