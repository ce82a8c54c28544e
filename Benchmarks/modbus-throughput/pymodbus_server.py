"""pymodbus Modbus TCP server for the throughput benchmark (optional row).

    python3 pymodbus_server.py PORT      (listens on 127.0.0.1 only; SIGINT/SIGTERM stop it)

Holding registers 0...199 with constant values, any unit id. The data block starts at 1, which
is protocol address 0 in every 3.x version (old ones add 1 to the address, new ones subtract 1
from the block's start). The device context is ModbusDeviceContext from 3.10 on,
ModbusSlaveContext before.
"""

import asyncio
import logging
import sys

import pymodbus
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import StartAsyncTcpServer

try:
    from pymodbus.datastore import ModbusDeviceContext as DeviceContext
except ImportError:  # pymodbus < 3.10
    from pymodbus.datastore import ModbusSlaveContext as DeviceContext


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: pymodbus_server.py PORT")
    port = int(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    device = DeviceContext(hr=ModbusSequentialDataBlock(1, list(range(200))))
    context = ModbusServerContext(device, single=True)
    print(f"pymodbus {pymodbus.__version__} server listening on 127.0.0.1:{port}", flush=True)
    try:
        asyncio.run(StartAsyncTcpServer(context=context, address=("127.0.0.1", port)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
