//! ftpdlib: an FTP server library built as a single-threaded mio reactor.
