"""An asyncio streams echo server, the way the Python docs write one:
127.0.0.1:PORT (argv[1]; 0 picks a free port), prints `listening on ADDR`
first, echoes every byte back unchanged."""
import asyncio
import sys


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, '127.0.0.1', port, backlog=1024)
    print('listening on %s:%d' % server.sockets[0].getsockname(), flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
