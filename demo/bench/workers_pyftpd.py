"""pyftpdlib for workers.sh, with FTPS offered (TLS_FTPHandler over pyOpenSSL) and not
required, connection limits off, logging as `python -m pyftpdlib` logs (INFO).

    workers_pyftpd.py single|multiproc HOST PORT ROOT USER PASSWORD CERT KEY

single: FTPServer, one process, one event loop. multiproc: MultiprocessFTPServer, which
forks a process for every session it accepts.
"""

import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer, MultiprocessFTPServer


def main():
    model, host, port, root, user, password, cert, key = sys.argv[1:9]
    if host not in ("127.0.0.1", "::1", "localhost"):
        sys.exit("workers_pyftpd.py: loopback only")
    config_logging(level=logging.INFO)
    auth = DummyAuthorizer()
    auth.add_user(user, password, root, perm="elr")
    handler = TLS_FTPHandler
    handler.certfile, handler.keyfile = cert, key
    handler.authorizer = auth
    # Made before the first fork, so that every session's process shares the context (and
    # its ticket key) rather than making it again.
    handler.get_ssl_context()
    cls = MultiprocessFTPServer if model == "multiproc" else FTPServer
    server = cls((host, int(port)), handler)
    server.max_cons = 0
    server.max_cons_per_ip = 0
    server.serve_forever()


if __name__ == "__main__":
    main()
