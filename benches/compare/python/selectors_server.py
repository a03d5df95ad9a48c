"""The notes' selectors callback server (003_8786073bdc871acb.txt), adapted
for the benchmark and nothing more:

- listens on 127.0.0.1:PORT (argv[1]; 0 picks a free port) instead of
  localhost:1234 and prints `listening on ADDR` first, like every server
  in the bench;
- no print per connection or message (every server in the bench runs with
  logging off; the notes' `print(data.decode('utf8'))` would also close
  the connection on any byte that is not UTF-8);
- backlog 1024 instead of 100, as for every server in the bench.

The rest is the notes' code, including `conn.send(data)` whose count is
not checked: a partial send loses bytes, and the load generator says so.
"""
import selectors
import socket
import sys

sel = selectors.DefaultSelector()


def accept(sock, mask):
    conn, addr = sock.accept()
    conn.setblocking(False)
    sel.register(conn, selectors.EVENT_READ, read)


def read(conn, mask):
    try:
        data = conn.recv(1000)
        if not data:
            raise Exception
        conn.send(data)
    except Exception as e:
        sel.unregister(conn)
        conn.close()


sock = socket.socket()
sock.bind(('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else 1234))
sock.listen(1024)
sock.setblocking(False)
print('listening on %s:%d' % sock.getsockname(), flush=True)
sel.register(sock, selectors.EVENT_READ, accept)
while True:
    events = sel.select()
    for key, mask in events:
        callback = key.data
        callback(key.fileobj, mask)
