"""The notes' select server (003_8786073bdc871acb.txt, "IO多路复用服务端"),
adapted for the benchmark and nothing more:

- listens on 127.0.0.1:PORT (argv[1]; 0 picks a free port) and prints
  `listening on ADDR` first, like every server in the bench;
- echoes the data as is: no `hello...` greeting, no `response:` prefix;
- answers the oldest chunk first (`pop(0)`): the notes' `pop()` answers the
  newest, which reorders the stream as soon as two chunks wait, and the
  load generator checks every byte;
- no print per event (every server in the bench runs with logging off);
- backlog 1024 instead of 5, as for every server in the bench.

The rest is the notes' code: blocking sockets, `select` over inputs and
outputs with a 1 s timeout, `recv(1024)`, one `sendall` per writable socket.
select(2) cannot watch fds >= 1024, so the 10,000-idle workload skips it.
"""
import select
import socket
import sys

ip_port = ('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else 9999)
s = socket.socket()
s.bind(ip_port)
s.listen(1024)
print('listening on %s:%d' % s.getsockname(), flush=True)
inputs = [s, ]
outputs = []
msg = {}
while True:
    rlist, wlist, elist = select.select(inputs, outputs, [], 1)
    for r in rlist:
        if r == s:
            conn, addr = r.accept()
            inputs.append(conn)
            msg[conn] = []
        else:
            try:
                recv_data = r.recv(1024)
                if not recv_data:
                    raise Exception('断开连接')
                else:
                    outputs.append(r)
                    msg[r].append(recv_data)
            except Exception as ex:
                inputs.remove(r)
                del msg[r]
    for w in wlist:
        last_msg = msg[w].pop(0)
        w.sendall(last_msg)
        outputs.remove(w)
