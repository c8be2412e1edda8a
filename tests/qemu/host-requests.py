#!/usr/bin/python3
"""The host's half of the QEMU guest's hot-plug requests (run-qemu-tests.sh).

Follows the guest's console log as QEMU writes it and, for each line

    HOST-REQUEST: unplug   device_del the digitizer (ivshmem-doorbell), wait
                           for QEMU's DEVICE_DELETED event (the guest's ACPI
                           hotplug driver ejected it), then chardev-remove its
                           chardev (the model sees QEMU go away)
    HOST-REQUEST: plug     chardev-add the chardev again (a client of the
                           model's socket; the model must be listening, see
                           sring-dma-model --reconnect), then device_add the
                           digitizer on it

does that over QEMU's QMP socket and writes one line per request to its log:
"host: unplugged", "host: plugged" or "host: FAILED <request>: <reason>".
The guest cannot read the answer: it watches its PCI bus itself. Exits when
QEMU closes the QMP socket (status 1 if a request failed, else 0).

Standard library only (Debian's /usr/bin/python3).
"""
import argparse
import json
import os
import re
import select
import socket
import sys
import time

REQUEST = re.compile(r"^HOST-REQUEST: (\S+)$")
ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[a-zA-Z]|c)")


class QmpClosed(Exception):
    pass


class Qmp:
    """A QMP client: commands answered in order, events queued meanwhile."""

    def __init__(self, path, connect_timeout):
        deadline = time.monotonic() + connect_timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpClosed(f"cannot connect to QMP at {path}: {e}")
                time.sleep(0.1)
        self.buffer = b""
        self.events = []
        self.next_id = 0
        greeting = self._read_message(timeout=connect_timeout)
        if greeting is None or "QMP" not in greeting:
            raise QmpClosed(f"no QMP greeting: {greeting!r}")
        self.command("qmp_capabilities")

    def fileno(self):
        return self.sock.fileno()

    def _read_message(self, timeout):
        """One JSON message, or None after timeout seconds. Raises QmpClosed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError as e:
                raise QmpClosed(str(e))
            if not data:
                raise QmpClosed("QEMU closed the QMP socket")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        line = line.strip()
        if not line:
            return self._read_message(max(0.0, deadline - time.monotonic()))
        return json.loads(line)

    def pump(self, timeout):
        """Queues the events that arrive within timeout seconds."""
        message = self._read_message(timeout)
        while message is not None:
            if "event" in message:
                self.events.append(message)
            # A reply nobody waits for (none are sent without waiting): drop it.
            message = self._read_message(0)

    def command(self, name, timeout=60, **arguments):
        """The command's "return" value; raises RuntimeError with QEMU's error."""
        self.next_id += 1
        tag = f"host-requests-{self.next_id}"
        request = {"execute": name, "id": tag}
        if arguments:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            message = self._read_message(max(0.0, left))
            if message is None:
                raise RuntimeError(f"{name}: no reply within {timeout} s")
            if "event" in message:
                self.events.append(message)
                continue
            if message.get("id") != tag:
                continue
            if "error" in message:
                error = message["error"]
                raise RuntimeError(f"{name}: {error.get('class')}: {error.get('desc')}")
            return message.get("return")

    def wait_event(self, match, timeout, fail=None):
        """The first queued or arriving event for which match(event) holds.
        fail(event) returning a string ends the wait with that error."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                event = self.events.pop(0)
                if fail is not None:
                    reason = fail(event)
                    if reason:
                        raise RuntimeError(reason)
                if match(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(min(left, 1.0))


class Host:
    def __init__(self, qmp, args, log):
        self.qmp = qmp
        self.args = args
        self.log = log
        self.failed = False

    def say(self, line):
        self.log.write(line + "\n")
        self.log.flush()

    def device_properties(self):
        props = {}
        for item in self.args.device.split(","):
            key, _, value = item.partition("=")
            props[key] = int(value) if value.isdigit() else value
        return props

    def unplug(self):
        device = self.device_properties()["id"]
        start = time.monotonic()
        self.qmp.command("device_del", id=device)

        def deleted(event):
            return (event["event"] == "DEVICE_DELETED" and
                    event.get("data", {}).get("device") == device)

        def refused(event):
            if (event["event"] == "DEVICE_UNPLUG_GUEST_ERROR" and
                    event.get("data", {}).get("device") == device):
                return f"the guest refused to eject {device}"
            return None

        if self.qmp.wait_event(deleted, self.args.timeout, refused) is None:
            raise RuntimeError(f"no DEVICE_DELETED for {device} within {self.args.timeout} s"
                               " (did the guest eject it?)")
        ejected = time.monotonic() - start
        self.qmp.command("chardev-remove", id=self.args.chardev)
        return f"unplugged ({device} deleted {ejected:.1f} s after device_del)"

    def plug(self):
        backend = {"type": "socket",
                   "data": {"addr": {"type": "unix", "data": {"path": self.args.socket}},
                            "server": False}}
        # The model listens again once it saw the old connection close: give
        # it a moment.
        deadline = time.monotonic() + self.args.timeout
        while True:
            try:
                self.qmp.command("chardev-add", id=self.args.chardev, backend=backend)
                break
            except RuntimeError as e:
                if "Failed to connect" not in str(e):
                    raise
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{e} (is the model listening on {self.args.socket}?)")
                time.sleep(0.2)
        try:
            self.qmp.command("device_add", timeout=self.args.timeout, **self.device_properties())
        except RuntimeError:
            # Leave no chardev behind, so that another plug can start afresh.
            try:
                self.qmp.command("chardev-remove", id=self.args.chardev)
            except RuntimeError:
                pass
            raise
        return "plugged"

    def serve(self, request):
        action = {"unplug": self.unplug, "plug": self.plug}.get(request)
        if action is None:
            self.failed = True
            self.say(f"host: FAILED {request}: unknown request (plug, unplug)")
            return
        try:
            self.say("host: " + action())
        except RuntimeError as e:
            self.failed = True
            self.say(f"host: FAILED {request}: {e}")
        except QmpClosed as e:
            self.failed = True
            self.say(f"host: FAILED {request}: {e}")
            raise


class Console:
    """The lines of a file that is still being written."""

    def __init__(self, path):
        self.path = path
        self.file = None
        self.partial = b""

    def lines(self):
        if self.file is None:
            try:
                self.file = open(self.path, "rb")
            except FileNotFoundError:
                return []
        data = self.file.read()
        if not data:
            return []
        self.partial += data
        *complete, self.partial = self.partial.split(b"\n")
        return [ESCAPE.sub("", line.decode("utf-8", "replace").replace("\r", "")) for line in complete]


def requests_in(lines):
    for line in lines:
        match = REQUEST.match(line.strip())
        if match:
            yield match.group(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--console", required=True, help="the guest's console log QEMU writes")
    parser.add_argument("--qmp", required=True, help="QEMU's QMP Unix socket")
    parser.add_argument("--socket", required=True, help="the model's Unix socket (chardev-add)")
    parser.add_argument("--chardev", default="dmachr", help="the device's chardev id")
    parser.add_argument("--device", default="driver=ivshmem-doorbell,id=digitizer,chardev=dmachr,vectors=2",
                        help="device_add's properties, KEY=VALUE,...; id= is also device_del's")
    parser.add_argument("--log", required=True, help="where to write one line per request")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds for the guest to eject, for the model to listen, for device_add")
    parser.add_argument("--connect-timeout", type=float, default=60,
                        help="seconds to wait for QEMU's QMP socket")
    args = parser.parse_args()

    with open(args.log, "a") as log:
        try:
            qmp = Qmp(args.qmp, args.connect_timeout)
        except (QmpClosed, RuntimeError) as e:
            log.write(f"host: FAILED to start: {e}\n")
            return 1
        host = Host(qmp, args, log)
        console = Console(args.console)
        try:
            while True:
                for request in requests_in(console.lines()):
                    host.serve(request)
                # Events nobody waits for yet are kept; the queue stays small
                # (QEMU sends few without being asked).
                qmp.pump(0.1)
                del qmp.events[:-100]
        except QmpClosed:
            pass
        # QEMU is gone: a request it printed last can no longer be served.
        for request in requests_in(console.lines()):
            host.failed = True
            host.say(f"host: FAILED {request}: QEMU went away first")
        return 1 if host.failed else 0


if __name__ == "__main__":
    sys.exit(main())
