#!/usr/bin/env python3
"""start_and_wait.py [LOCATION]: starts the VPN and waits for Connected through events, as an
observer (the application that owns the event pipe still gets every event). Prints the states
it goes through; exits 0 once connected, 1 with the error otherwise. The pipes are the standard
ones, or $PIPEMSG_COMMAND_PIPE / $PIPEMSG_EVENT_PIPE."""

import sys

import pipemsg


def main() -> int:
    location = sys.argv[1] if len(sys.argv) > 1 else None
    with pipemsg.Client() as c:
        print(c.get_state().state)
        with c.events(observe=True) as events:
            events.wait_attached()  # an observer sees what is published from then on
            try:
                c.start_vpn(location=location)
            except pipemsg.Error as e:
                print(f"start_and_wait: StartVpn: {e.result}: {e.message}", file=sys.stderr)
                return 1
            for ev in events:
                if isinstance(ev.typed, pipemsg.StateChanged):
                    print(ev.typed.state)
                    if ev.typed.state == "Connected":
                        return 0
                    if ev.typed.state == "Disconnected":
                        print(f"start_and_wait: {ev.typed.error}", file=sys.stderr)
                        return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
