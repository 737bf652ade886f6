"""One Client from several threads: commands on some while another iterates events()."""

import threading

import pipemsg


def test_commands_while_iterating_events(client):
    n = 20
    got = []
    errors = []

    def consume():
        try:
            for ev in client.events():
                got.append(ev.data["N"])
                if len(got) == n:
                    ev.confirm()
                    break
        except Exception as e:  # reported by the main thread
            errors.append(e)

    def produce(start):
        for i in range(start, n, 2):
            client.call("EmitEvent", Type="Numbered", Data={"N": i})
            assert client.get_state().state == "Disconnected"

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(k,)) for k in (0, 1)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    consumer.join(60)
    assert not consumer.is_alive()
    assert not errors
    assert sorted(got) == list(range(n))


def test_close_from_another_thread_ends_the_loop(service):
    c = pipemsg.Client()
    stream = c.events()
    done = threading.Event()

    def consume():
        assert list(stream) == []
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    c.close()
    t.join(30)
    assert done.is_set()
