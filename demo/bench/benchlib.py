"""benchlib.py: what the Python clients in demo/bench have in common (standard library only).

blocking.py, cpu_regress.py and listing_memory.py import it by path, from the directory
they are in:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchlib
"""

import ftplib
import json
import sys

# The hosts a client may be pointed at: the benchmarks run on 127.0.0.1 only.
LOOPBACK = ("127.0.0.1", "localhost", "::1")

# What a session that broke or was refused raises: socket errors, ftplib's errors for
# unexpected replies, EOFError when the server hangs up.
FTP_ERRORS = (OSError, ftplib.Error, EOFError)


def server_args(p):
    """Adds to the argparse parser p the options that name the server under test: --host
    (127.0.0.1), --port, --pid (the server's process id), --user and --password."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="the server's process id")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)


def loopback_only(a, name):
    """Ends the program, saying so under name, unless a.host is a loopback host."""
    if a.host not in LOOPBACK:
        sys.exit(f"{name}: loopback only")


def login(host, port, user, password, timeout):
    """A session to host:port, logged in with USER and PASS; each socket operation gives
    up after timeout seconds."""
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=timeout)
    ftp.login(user, password)
    return ftp


def quit_or_close(ftp):
    """Ends a session with QUIT, or only closes it when the server is gone or the QUIT
    goes wrong."""
    try:
        ftp.quit()
    except FTP_ERRORS:
        ftp.close()


def read_to_end(conn, buf):
    """Reads a data connection into buf (a bytearray, reused) until the server closes it;
    returns the number of bytes read. conn stays open."""
    got = 0
    while True:
        k = conn.recv_into(buf)
        if k == 0:
            return got
        got += k


def emit(obj):
    """Prints obj as one JSON line on stdout and flushes it: the shell script takes the
    lines as they come."""
    print(json.dumps(obj), flush=True)
