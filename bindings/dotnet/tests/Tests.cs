// The C# binding's tests: `mono PipeMsgTests.exe CASE`, one case per run, against the pipemsgd
// that tests/integration/test_dotnet.c started (its pipes in PIPEMSG_COMMAND_PIPE /
// PIPEMSG_EVENT_PIPE). Exit status 0: passed; 1: failed, with the reason on stderr.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace PipeMsg.Tests
{
    internal static class Program
    {
        // Long enough for a loaded shared machine (and an ASan build); a wrong behaviour fails
        // well before by being wrong, not late.
        private const int WaitMs = 20000;

        private static readonly Dictionary<string, Action> Cases = new Dictionary<string, Action>
        {
            { "layout", Layout },
            { "json", JsonCase },
            { "commands", Commands },
            { "coverage", Coverage },
            { "async", Async },
            { "events", Events },
            { "unconfirmed", Unconfirmed },
            { "observe", Observe },
            { "concurrent", Concurrent },
            { "bad_request", BadRequest },
            { "too_many_requests", TooManyRequests },
            { "service_error", ServiceError },
            { "connection_timeout", ConnectionTimeout },
            { "dispose", DisposeCase },
            { "exit", ExitCase },
            { "exit_busy", ExitBusyCase },
            { "hostile", Hostile },
            { "cancel_queued", CancelQueued },
            { "cancel_in_flight", CancelInFlight },
            { "cancel_before", CancelBefore },
        };

        private static int Main(string[] args)
        {
            Action run;
            if (args.Length != 1 || !Cases.TryGetValue(args[0], out run))
            {
                Console.Error.WriteLine("usage: PipeMsgTests.exe " + string.Join("|", Cases.Keys));
                return 2;
            }
            try
            {
                run();
                return 0;
            }
            catch (Exception e)
            {
                Console.Error.WriteLine(args[0] + ": FAILED: " + e);
                return 1;
            }
        }

        private static void Check(bool ok, string what)
        {
            if (!ok)
                throw new Exception("check failed: " + what);
        }

        private static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new Exception(what + ": expected <" + expected + ">, got <" + actual + ">");
        }

        private static PipeMsgException Throws(Action a, string what)
        {
            try
            {
                a();
            }
            catch (AggregateException e) when (e.InnerException is PipeMsgException)
            {
                return (PipeMsgException)e.InnerException;
            }
            catch (PipeMsgException e)
            {
                return e;
            }
            throw new Exception(what + ": no PipeMsgException");
        }

        private static T Await<T>(Task<T> t, string what)
        {
            Check(t.Wait(WaitMs), what + " completes");
            return t.Result;
        }

        // Polls a condition of the service (each look is a command round trip) until it holds.
        private static void Until(Func<bool> cond, string what)
        {
            var deadline = DateTime.UtcNow.AddMilliseconds(WaitMs);
            while (!cond())
            {
                Check(DateTime.UtcNow < deadline, what);
                Thread.Sleep(10); // a poll interval, not a synchronisation
            }
        }

        // ---- the structs shared with C: offsets and sizes, compared by test_dotnet.c ---------

        private static void Layout()
        {
            var types = new[] { typeof(Client).Assembly.GetType("PipeMsg.Native+Config"),
                                typeof(Client).Assembly.GetType("PipeMsg.Native+Result"),
                                typeof(Client).Assembly.GetType("PipeMsg.Native+EventHead") };
            foreach (Type t in types)
            {
                Console.WriteLine(t.Name + " " + Marshal.SizeOf(t));
                foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public))
                    Console.WriteLine(t.Name + "." + f.Name + " " + Marshal.OffsetOf(t, f.Name));
            }
        }

        // ---- the JSON reader and writer --------------------------------------------------------

        private static void JsonCase()
        {
            var v = (Dictionary<string, object>)Json.Parse(
                " {\"a\":[1,-2,3.5,1e2,true,false,null],\"s\":\"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\",\"o\":{}} ");
            var a = (List<object>)v["a"];
            Equal(7, a.Count, "array length");
            Equal(1L, (long)a[0], "integer");
            Equal(-2L, (long)a[1], "negative");
            Equal(3.5, (double)a[2], "fraction");
            Equal(100.0, (double)a[3], "exponent");
            Equal(true, (bool)a[4], "true");
            Equal(false, (bool)a[5], "false");
            Check(a[6] == null, "null");
            Equal("x\"\\/\b\f\n\r\t\u00e9\U0001F600", (string)v["s"], "escapes");
            Equal(0, ((Dictionary<string, object>)v["o"]).Count, "empty object");
            Equal(long.MaxValue, (long)Json.Parse("9223372036854775807"), "long max");
            Equal(long.MinValue, (long)Json.Parse("-9223372036854775808"), "long min");
            foreach (string bad in new[] { "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "+1",
                                           "1e", "tru", "nul", "\"\\x\"", "\"a\nb\"", "\"\\ud800\"",
                                           "\"\\udc00\"", "{\"a\":1,\"a\":2}", "[1] 2", "{a:1}",
                                           "'a'", "9223372036854775808", "1e400", "[" + new string('[', 64) + new string(']', 65),
                                           "\"unterminated", "{\"a\" 1}" })
            {
                try
                {
                    Json.Parse(bad);
                    throw new Exception("accepted: " + bad);
                }
                catch (FormatException)
                {
                }
            }
            string deep = new string('[', 64) + new string(']', 64);
            Equal(deep, Json.Write(Json.Parse(deep)), "64 levels");
            // What Write makes, Parse takes: one level more is refused when written.
            object nested = new List<object>();
            for (int i = 1; i <= Json.MaxDepth; i++)
                nested = new List<object> { nested };
            ThrowsArgument(() => Json.Write(nested), "65 levels through Json.Write");
            var obj = new List<KeyValuePair<string, object>>
            {
                new KeyValuePair<string, object>("S", "a\"\\\n\u0001é\U0001F600"),
                new KeyValuePair<string, object>("I", -5L),
                new KeyValuePair<string, object>("D", 2.0),
                new KeyValuePair<string, object>("B", true),
                new KeyValuePair<string, object>("N", null),
                new KeyValuePair<string, object>("L", new List<object> { 1, "x" }),
            };
            string text = Json.Write(obj);
            Equal("{\"S\":\"a\\\"\\\\\\n\\u0001é\U0001F600\",\"I\":-5,\"D\":2.0,\"B\":true,\"N\":null,\"L\":[1,\"x\"]}",
                  text, "written");
            Equal(text, Json.Write(Json.Parse(text)), "round trip");
            foreach (object bad in new object[] { double.NaN, double.PositiveInfinity, "\ud800", new object() })
            {
                try
                {
                    Json.Write(bad);
                    throw new Exception("written: " + bad);
                }
                catch (ArgumentException)
                {
                }
            }
        }

        // ---- every command -------------------------------------------------------------------

        private static void Commands()
        {
            using (var c = new Client())
            {
                GetVersionAnswer ver = c.GetVersion();
                Equal("pipemsgd", ver.Service, "GetVersion.Service");
                Check(ver.Protocol >= 1 && ver.Version.Length > 0, "GetVersion fields");

                GetStateAnswer st = c.GetState();
                Equal(State.Disconnected, st.State, "GetState.State");
                Equal("Disconnected", st.State.ToString(), "State.ToString()");
                Check(st.Location != null, "GetState.Location");
                Check(st.Since.Length > 0, "GetState.Since");
                Check(st.LastError == null, "no LastError");

                c.EnableKillSwitch();
                Equal(true, c.GetState().KillSwitch, "KillSwitch after EnableKillSwitch");
                c.DisableKillSwitch();
                Equal(false, c.GetState().KillSwitch, "KillSwitch after DisableKillSwitch");

                c.SetReconnectionEnabled(false);
                Equal(false, c.IsReconnectionEnabled().Enabled, "IsReconnectionEnabled");
                Equal(false, c.GetState().ReconnectionEnabled, "GetState.ReconnectionEnabled");
                c.SetReconnectionEnabled(true);
                Equal(true, c.IsReconnectionEnabled().Enabled, "IsReconnectionEnabled again");

                Equal(2L, c.ConfigureBypassDomains(new[] { "example.com", "*.example.org" }).Count,
                      "ConfigureBypassDomains.Count");
                Equal("example.com,*.example.org", string.Join(",", c.GetState().BypassDomains),
                      "GetState.BypassDomains");
                Equal(0L, c.ConfigureBypassDomains(new string[0]).Count, "cleared");

                GetTrafficAnswer tr = c.GetTraffic();
                Check(tr.BytesSent >= 0 && tr.BytesReceived >= 0, "GetTraffic");

                GetStatsAnswer stats = c.GetStats();
                Check(stats.Commands.Ok >= 10, "GetStats.Commands.Ok counts these calls");
                Check(stats.Events.Epoch >= 1, "GetStats.Events.Epoch");

                GetCommandsAnswer cmds = c.GetCommands();
                CommandInfo start = cmds.Commands.First(x => x.Name == "StartVpn");
                ParamInfo loc = start.Params.First(p => p.Name == "Location");
                Equal("\"auto\"", loc.Default, "a scalar is JSON text");
                Equal(64L, loc.MaxLength, "ParamInfo.MaxLength");
                Check(cmds.Events.Any(e => e.Type == "StateChanged"), "GetCommands.Events");

                // StartVpn's outcome is events: an observer-free wait on the event pipe.
                var states = new BlockingCollection<string>();
                c.EventReceived += (s, e) =>
                {
                    if (e.Type == "StateChanged")
                        states.Add((string)((Dictionary<string, object>)Json.Parse(e.Data))["State"]);
                };
                StartVpnAnswer started = c.StartVpn("de", true);
                Equal(State.Connecting, started.State, "StartVpn.State");
                WaitState(states, "Connected");
                GetStateAnswer on = c.GetState();
                Equal(State.Connected, on.State, "connected");
                Equal("de", on.Location, "location");
                Equal(true, on.KillSwitch, "StartVpn's EnableKillSwitch kept");
                Equal(State.Disconnecting, c.StopVpn().State, "StopVpn.State");
                WaitState(states, "Disconnected");
                c.StartVpn();
                WaitState(states, "Connected");
                Equal("auto", c.GetState().Location, "StartVpn() uses the service's default");
                Equal(true, c.GetState().KillSwitch, "StartVpn() leaves the kill switch as kept");
                c.StopVpn();
                WaitState(states, "Disconnected");

                // The generic call, and a test-only command through it.
                Equal("{\"Text\":\"héllo\",\"N\":[1,2]}", c.Call("Echo", "{\"Text\":\"héllo\",\"N\":[1,2]}"),
                      "Echo");
                Check(c.Call("EnableKillSwitch") == null, "a command without Data gives null");
            }
        }

        private static void WaitState(BlockingCollection<string> states, string want)
        {
            string got;
            do
                Check(states.TryTake(out got, WaitMs), "StateChanged " + want + " comes");
            while (got != want);
        }

        // Every command the service serves (without --test-commands) has a method and its twin.
        private static void Coverage()
        {
            using (var c = new Client())
            {
                var missing = new List<string>();
                foreach (CommandInfo cmd in c.GetCommands().Commands)
                    foreach (string m in new[] { cmd.Name, cmd.Name + "Async" })
                        if (typeof(Client).GetMethod(m) == null)
                            missing.Add(m);
                Check(missing.Count == 0, "PipeMsg.Client lacks " + string.Join(", ", missing) +
                      ": run scripts/contract_dotnet.py and rebuild");
                foreach (string name in Client.Commands)
                    Check(c.GetCommands().Commands.Any(x => x.Name == name), name + " served");
            }
        }

        // ---- the asynchronous twins ----------------------------------------------------------

        // Clients made, each used for one asynchronous call, and dropped without Dispose.
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        private static List<WeakReference> Dropped(int n)
        {
            var refs = new List<WeakReference>();
            for (int i = 0; i < n; i++)
            {
                var x = new Client();
                Await(x.GetStateAsync(), "GetStateAsync of a client to drop");
                refs.Add(new WeakReference(x));
            }
            return refs;
        }

        private static void Async()
        {
            // A finished asynchronous call does not keep its client alive: a client dropped
            // without Dispose is finalized, and its library thread ends (20 of 20 stayed).
            List<WeakReference> dropped = Dropped(20);
            int alive = dropped.Count;
            for (int round = 0; round < 20 && alive > 2; round++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                alive = dropped.Count(r => r.IsAlive);
            }
            Check(alive <= 2, alive + " of 20 dropped clients were not collected");
            using (var c = new Client())
            {
                Task<GetStateAnswer> st = c.GetStateAsync();
                Task<GetVersionAnswer> ver = c.GetVersionAsync();
                Task<string> echo = c.CallAsync("Echo", "{\"A\":1}");
                Equal(State.Disconnected, Await(st, "GetStateAsync").State, "GetStateAsync");
                Equal("pipemsgd", Await(ver, "GetVersionAsync").Service, "GetVersionAsync");
                Equal("{\"A\":1}", Await(echo, "CallAsync"), "CallAsync");

                Task k = c.EnableKillSwitchAsync();
                Check(k.Wait(WaitMs), "EnableKillSwitchAsync completes");
                Equal(true, c.GetState().KillSwitch, "EnableKillSwitchAsync took effect");
                Equal(1L, Await(c.ConfigureBypassDomainsAsync(new List<string> { "a.example" }), "bypass").Count,
                      "ConfigureBypassDomainsAsync");
                Check(c.SetReconnectionEnabledAsync(false).Wait(WaitMs), "SetReconnectionEnabledAsync");
                Equal(false, Await(c.IsReconnectionEnabledAsync(), "IsReconnectionEnabledAsync").Enabled,
                      "IsReconnectionEnabledAsync");
                Check(Await(c.GetTrafficAsync(), "GetTrafficAsync").BytesSent >= 0, "GetTrafficAsync");
                Check(Await(c.GetStatsAsync(), "GetStatsAsync").Commands.Ok > 0, "GetStatsAsync");
                Check(Await(c.GetCommandsAsync(), "GetCommandsAsync").Commands.Count > 0, "GetCommandsAsync");
                Equal(State.Connecting, Await(c.StartVpnAsync("de"), "StartVpnAsync").State, "StartVpnAsync");
                Equal(State.Disconnecting, Await(c.StopVpnAsync(), "StopVpnAsync").State, "StopVpnAsync");
                Check(c.DisableKillSwitchAsync().Wait(WaitMs), "DisableKillSwitchAsync");

                // A failure faults the task with the result.
                PipeMsgException e = Throws(() => c.StartVpnAsync("no spaces").Wait(WaitMs), "async BadRequest");
                Equal("BadRequest", e.Result, "async BadRequest");

                // Completions run on the pool, not the library's worker: a continuation may
                // wait for another asynchronous call of the same client.
                Task<State> chained = c.GetStateAsync().ContinueWith(t => c.GetStateAsync().Result.State);
                Check(Await(chained, "a continuation's own call") != State.Unknown, "a known state");
            }
        }

        // ---- events ----------------------------------------------------------------------------

        private static ArgumentException ThrowsArgument(Action a, string what)
        {
            try
            {
                a();
            }
            catch (ArgumentException e)
            {
                return e;
            }
            throw new Exception(what + ": no ArgumentException");
        }

        private static void Contains(string text, string part, string what)
        {
            Check(text != null && text.Contains(part), what + ": \"" + text + "\" does not say \"" + part + "\"");
        }

        // Hostile values: each is refused with an exception that says why, never a crash or a
        // hang, and the client (and the service) go on working.
        private static void Hostile()
        {
            using (var c = new Client())
            {
                PipeMsgException e;
                // 17 MiB: past the 16 MiB frame limit, refused before anything is sent.
                e = Throws(() => c.Call("Echo", "{\"T\":\"" + new string('x', 17 * 1024 * 1024) + "\"}"),
                           "a string larger than max_message");
                Equal("TransportError", e.Result, "oversized result");
                Contains(e.Message, "frame length out of range", "oversized");
                e = Throws(() => c.Call("Echo", "{\"V\":" + new string('[', 100000) + new string(']', 100000) + "}"),
                           "nesting beyond the parser");
                Equal("InvalidArgument", e.Result, "deep result");
                Contains(e.Message, "maximum parsing depth", "deep");
                e = Throws(() => c.Call("Echo", "{\"V\":" + new string('[', 1000) + new string(']', 1000) + "}"),
                           "nesting beyond a message");
                Equal("InvalidArgument", e.Result, "nesting beyond a message: result");
                Contains(e.Message, "nesting deeper than 64", "nesting beyond a message");
                e = Throws(() => c.Call("Echo", "{\"V\":123456789012345678901234567890}"), "huge integer");
                Contains(e.Message, "too big integer", "huge integer");
                e = Throws(() => c.Call("Echo", "{\"V\":-123456789012345678901234567890}"), "huge negative integer");
                Contains(e.Message, "too big negative integer", "huge negative integer");
                e = Throws(() => c.Call("EmitEvent", "{\"Type\":\"Demo\",\"Count\":-1}"), "negative count");
                Equal("BadRequest", e.Result, "negative count result");
                e = Throws(() => c.Call("Echo", "{\"V\":NaN}"), "NaN");
                Equal("InvalidArgument", e.Result, "NaN result");
                ThrowsArgument(() => Json.Write(double.NaN), "NaN through Json.Write");
                e = Throws(() => c.Call("Echo", "{\"T\":\"a\\u0000b\"}"), "an escaped NUL");
                Contains(e.Message, "JSON_ALLOW_NUL", "escaped NUL");
                e = Throws(() => c.Call("Echo", "{\"T\":\"\\ud800\"}"), "an escaped lone surrogate");
                Contains(e.Message, "invalid Unicode", "escaped surrogate");
                // Cut at the NUL, these would run GetState, and send {} instead of an error.
                Contains(ThrowsArgument(() => c.Call("GetState\0Evil"), "NUL in a command").Message, "NUL",
                         "NUL in a command");
                ThrowsArgument(() => c.Call("Echo", "{}\0{\"T\":1"), "NUL in Params text");
                ThrowsArgument(() => Await(c.CallAsync("GetState\0Evil"), "async NUL"), "NUL, async");
                ThrowsArgument(() => c.Call("\ud800"), "a lone surrogate in a command");
                ThrowsArgument(() => c.Call("Echo", "{\"T\":\"\udc00\"}"), "a lone surrogate in Params");
                ThrowsArgument(() => new Client("cmd\0x"), "NUL in a pipe name");
                // Names the library refuses, each with its reason (not a TransportError).
                Contains(ThrowsArgument(() => new Client("rel/path"), "a relative path").Message,
                         "bare NAME", "a relative path");
                Contains(ThrowsArgument(() => new Client("/" + new string('p', 300)), "a long path").Message,
                         "too long", "a long path");
                Equal("{\"T\":\"\U0001F600\ufffd\"}", c.Call("Echo", "{\"T\":\"\U0001F600\ufffd\"}"),
                      "text beyond the BMP goes through");

                // A handler that throws, and an EventHandlerFailed that throws too: dropped, the
                // process lives on and the client still works.
                var failed = new ManualResetEventSlim();
                c.EventHandlerFailed += (s, x) =>
                {
                    failed.Set();
                    throw new InvalidOperationException("the failure handler fails too");
                };
                c.EventReceived += (s, x) => { throw new InvalidOperationException("handler refuses"); };
                Emit(c, "Custom", null, 1);
                Check(failed.Wait(WaitMs), "EventHandlerFailed raised");
                Equal(State.Disconnected, c.GetState().State, "still works");
            }
            var closed = new Client();
            closed.Dispose();
            closed.Dispose();
            foreach (Action a in new Action[] {
                () => closed.Call("GetState"),
                () => closed.GetState(),
                () => Await(closed.CallAsync("GetState"), "async after Dispose"),
                () => closed.EventReceived += (s, x) => { },
            })
            {
                try
                {
                    a();
                    throw new Exception("a call after Dispose did not throw");
                }
                catch (AggregateException e) when (e.InnerException is ObjectDisposedException)
                {
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }

        private static void Emit(Client c, string type, string dataJson, int count)
        {
            c.Call("EmitEvent", "{\"Type\":\"" + type + "\"" + (dataJson != null ? ",\"Data\":" + dataJson : "") +
                                ",\"Count\":" + count + "}");
        }

        private static void Events()
        {
            using (var c = new Client())
            {
                // Durable events queued while nothing is attached: nothing flows until a handler.
                Emit(c, "StateChanged", "{\"State\":\"Connected\",\"Location\":\"se\"}", 1);
                Emit(c, "Custom", null, 2);
                Equal(3L, c.GetStats().Events.Queued, "queued before a handler");
                Equal(false, c.GetStats().Events.Attached, "not attached without a handler");

                var got = new BlockingCollection<EventArgs>();
                EventHandler<EventArgs> h = (s, e) =>
                {
                    Check(s == c, "sender is the client");
                    got.Add(e);
                };
                c.EventReceived += h;
                var all = new List<EventArgs>();
                for (int i = 0; i < 3; i++)
                {
                    EventArgs e;
                    Check(got.TryTake(out e, WaitMs), "event " + (i + 1) + " comes");
                    all.Add(e);
                }
                Equal("StateChanged", all[0].Type, "first type");
                var data = (Dictionary<string, object>)Json.Parse(all[0].Data);
                Equal("Connected", (string)data["State"], "Data.State");
                Equal("se", (string)data["Location"], "Data.Location");
                Check(all[0].Time != null && all[0].Epoch >= 1, "Time and Epoch");
                Equal("Custom", all[1].Type, "second type");
                Check(all[1].Data == null, "an event without Data");
                Check(all[0].Id < all[1].Id && all[1].Id < all[2].Id, "ids increase");
                // Confirmed when the handler returned.
                Until(() => c.GetStats().Events.Delivered == 3, "3 events confirmed");
                Equal(0L, c.GetStats().Events.Queued, "nothing left queued");

                // The last handler gone, the client detaches; new events wait in the queue.
                c.EventReceived -= h;
                Until(() => !c.GetStats().Events.Attached, "detached after the last handler");
                Emit(c, "Custom", null, 1);
                Equal(1L, c.GetStats().Events.Queued, "queued while detached");
                EventArgs none;
                Check(!got.TryTake(out none, 200), "nothing delivered without a handler");
                c.EventReceived += h;
                EventArgs again;
                Check(got.TryTake(out again, WaitMs), "flows again once attached");
                Equal("Custom", again.Type, "the queued one");
                Until(() => c.GetStats().Events.Delivered == 4, "4 confirmed");
            }
        }

        // EventObserved: an observer sees what is published while it is attached, confirms
        // none, and leaves the client slot (and the queue) to EventReceived.
        private static void Observe()
        {
            using (var o = new Client())
            using (var c = new Client())
            {
                Emit(c, "Old", null, 1);
                var seen = new BlockingCollection<EventArgs>();
                EventHandler<EventArgs> watch = (s, e) =>
                {
                    Check(s == o, "sender is the observing client");
                    seen.Add(e);
                };
                o.EventObserved += watch;
                Until(() => c.GetStats().Events.Observers == 1, "the observer attached");
                Equal(false, c.GetStats().Events.Attached, "the client slot is left free");

                Emit(c, "Seen", null, 2);
                var observed = new List<EventArgs>();
                for (int i = 0; i < 2; i++)
                {
                    EventArgs e;
                    Check(seen.TryTake(out e, WaitMs), "observed event " + (i + 1));
                    observed.Add(e);
                }
                Equal("Seen", observed[0].Type, "published before the observer: not seen");
                Equal(3L, c.GetStats().Events.Queued, "the observer took nothing from the queue");
                Equal(0L, c.GetStats().Events.Delivered, "the observer confirmed nothing");

                // The application's client, attached beside it, gets everything kept.
                var got = new BlockingCollection<EventArgs>();
                c.EventReceived += (s, e) => got.Add(e);
                var received = new List<EventArgs>();
                for (int i = 0; i < 3; i++)
                {
                    EventArgs e;
                    Check(got.TryTake(out e, WaitMs), "received event " + (i + 1));
                    received.Add(e);
                }
                Equal("Old", received[0].Type, "the client gets the older one");
                Equal(observed[0].Id, received[1].Id, "the same first event");
                Equal(observed[1].Id, received[2].Id, "the same second event");
                Until(() => c.GetStats().Events.Delivered == 3, "the client confirmed 3");
                Equal(true, c.GetStats().Events.Attached, "the client holds the slot");

                // Both attached: each gets the next one, only the client's confirmation counts.
                Emit(c, "Both", null, 1);
                EventArgs a, b;
                Check(seen.TryTake(out a, WaitMs), "observed while both attached");
                Check(got.TryTake(out b, WaitMs), "received while both attached");
                Equal(a.Id, b.Id, "the same event");
                Until(() => c.GetStats().Events.Delivered == 4, "the client confirmed 4");
                Equal(4L, c.GetStats().Events.Delivered, "nothing else confirmed");

                o.EventObserved -= watch;
                Until(() => c.GetStats().Events.Observers == 0, "the observer detached");
                Equal(true, c.GetStats().Events.Attached, "the client stays attached");
                EventArgs none;
                Check(!seen.TryTake(out none, 200), "nothing observed after detaching");
            }
        }

        // A handler that throws leaves its event unconfirmed for the next attach.
        private static void Unconfirmed()
        {
            using (var c = new Client())
            {
                Emit(c, "Custom", null, 1);
                var failed = new BlockingCollection<Exception>();
                long thrownId = 0;
                c.EventHandlerFailed += (s, e) => failed.Add(e.GetException());
                c.EventReceived += (s, e) =>
                {
                    thrownId = e.Id;
                    throw new InvalidOperationException("handler refuses " + e.Id);
                };
                Exception ex;
                Check(failed.TryTake(out ex, WaitMs), "EventHandlerFailed raised");
                Check(ex is InvalidOperationException, "the handler's exception: " + ex);
                Until(() => !c.GetStats().Events.Attached, "detached after the failure");
                Equal(0L, c.GetStats().Events.Delivered, "not confirmed");

                var got = new BlockingCollection<EventArgs>();
                c.EventReceived += (s, e) => got.Add(e);
                EventArgs again;
                Check(got.TryTake(out again, WaitMs), "delivered again on the next attach");
                Equal(thrownId, again.Id, "the same event");
                Until(() => c.GetStats().Events.Delivered == 1, "confirmed this time");
            }

            // Dispose while a handler runs: that event stays unconfirmed, for the next client.
            var d = new Client();
            var inHandler = new ManualResetEventSlim();
            var release = new ManualResetEventSlim();
            long heldId = 0;
            d.EventReceived += (s, e) =>
            {
                heldId = e.Id;
                inHandler.Set();
                release.Wait(WaitMs);
            };
            Emit(d, "Custom", null, 1);
            Check(inHandler.Wait(WaitMs), "the handler runs");
            var disposing = new Thread(d.Dispose); // it waits for the handler
            disposing.Start();
            FieldInfo disposed = typeof(Client).GetField("disposed", BindingFlags.NonPublic | BindingFlags.Instance);
            Until(() => (bool)disposed.GetValue(d), "Dispose began");
            release.Set();
            disposing.Join();
            using (var next = new Client())
            {
                var got = new BlockingCollection<EventArgs>();
                next.EventReceived += (s, e) => got.Add(e);
                EventArgs again;
                Check(got.TryTake(out again, WaitMs), "delivered to the next client");
                Equal(heldId, again.Id, "the event whose handler ran at Dispose");
            }
        }

        // Commands on other threads, and from a handler, while events flow: the first handler
        // call waits until the other threads have completed 10 more calls, so they overlap a
        // delivery for certain (test_dotnet.c gives this service a long ack timeout).
        private static void Concurrent()
        {
            const int N = 300;
            using (var c = new Client())
            {
                int seen = 0, calls = 0;
                var gate = new object();
                var done = new ManualResetEventSlim();
                string handlerError = null;
                c.EventReceived += (s, e) =>
                {
                    if (e.Type != "Custom")
                        return;
                    int n = Interlocked.Increment(ref seen);
                    if (n == 1)
                        lock (gate)
                        {
                            int target = calls + 10;
                            while (calls < target)
                                if (!Monitor.Wait(gate, WaitMs))
                                {
                                    handlerError = "no calls completed during a delivery";
                                    break;
                                }
                        }
                    if (n % 50 == 0 && c.GetTraffic().BytesSent < 0)
                        handlerError = "GetTraffic from a handler";
                    if (n == N)
                        done.Set();
                };
                var workers = Enumerable.Range(0, 3).Select(_ => Task.Factory.StartNew(() =>
                {
                    while (!done.IsSet)
                    {
                        Equal(State.Disconnected, c.GetState().State, "GetState while events flow");
                        Check(c.GetStateAsync().Wait(WaitMs), "GetStateAsync while events flow");
                        lock (gate)
                        {
                            calls++;
                            Monitor.PulseAll(gate);
                        }
                    }
                }, TaskCreationOptions.LongRunning)).ToArray();
                Emit(c, "Custom", null, N);
                Check(done.Wait(WaitMs * 3), "all " + N + " events came (" + seen + ")");
                Check(Task.WaitAll(workers, WaitMs), "the callers finish");
                Check(handlerError == null, handlerError ?? "");
                Until(() => c.GetStats().Events.Delivered == N, "all confirmed");
            }
        }

        // ---- errors ----------------------------------------------------------------------------

        private static void BadRequest()
        {
            using (var c = new Client())
            {
                PipeMsgException e = Throws(() => c.StartVpn("no spaces"), "StartVpn bad location");
                Equal("BadRequest", e.Result, "Result");
                Check(e.FromService, "from the service");
                Check(e.Message.Contains("Location"), "Message names the parameter: " + e.Message);
                e = Throws(() => c.ConfigureBypassDomains(new[] { "bad_domain!" }), "bad domain");
                Equal("BadRequest", e.Result, "Result (domain)");
                e = Throws(() => c.Call("NoSuchCommand"), "unknown command");
                Equal("BadRequest", e.Result, "Result (unknown command)");
                e = Throws(() => c.Call("GetState", "[1]"), "Params not an object");
                Equal("InvalidArgument", e.Result, "decided by the client");
                Check(!e.FromService, "not from the service");
            }
        }

        private static void TooManyRequests()
        {
            using (var c = new Client())
            {
                // The service connects for a minute (--connect-delay-ms): a second start is refused.
                Equal(State.Connecting, c.StartVpn("de").State, "first StartVpn");
                PipeMsgException e = Throws(() => c.StartVpn("de"), "second StartVpn");
                Equal("TooManyRequests", e.Result, "Result");
                Check(e.FromService && e.Message.Length > 0, "the service's text: " + e.Message);
                e = Throws(() => c.StartVpnAsync("de").Wait(WaitMs), "second StartVpnAsync");
                Equal("TooManyRequests", e.Result, "async Result");
                c.StopVpn();
            }
        }

        private static void ServiceError()
        {
            using (var c = new Client())
            {
                // The data directory cannot keep settings (test_dotnet.c made settings.json a
                // directory).
                PipeMsgException e = Throws(() => c.EnableKillSwitch(), "EnableKillSwitch");
                Equal("Error", e.Result, "Result");
                Check(e.FromService, "from the service");
                Equal("the setting could not be saved in the data directory", e.Message, "Message");
            }
        }

        private static void ConnectionTimeout()
        {
            string dir = Path.Combine(Path.GetTempPath(), "pipemsg-dotnet-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                using (var c = new Client(Path.Combine(dir, "nobody-here"), Path.Combine(dir, "nobody-events")))
                {
                    var t0 = DateTime.UtcNow;
                    PipeMsgException e = Throws(() => c.GetState(), "GetState without a service");
                    double ms = (DateTime.UtcNow - t0).TotalMilliseconds;
                    Equal("ConnectionTimeout", e.Result, "Result");
                    Check(!e.FromService, "decided by the client");
                    // The library's 3 s connect deadline: not much earlier, not much later
                    // (a loaded machine may add seconds).
                    Check(ms >= 2900 && ms < 3000 + 10000, "waited the connect deadline: " + ms + " ms");
                    e = Throws(() => c.GetVersionAsync().Wait(WaitMs), "async without a service");
                    Equal("ConnectionTimeout", e.Result, "async Result");
                }
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        // Ending the program without Dispose, with an event session and a call worker that have
        // run managed code: the process still exits (test_dotnet.c's time limit says if not).
        private static void ExitCase()
        {
            var c = new Client();
            var got = new ManualResetEventSlim();
            c.EventReceived += (s, e) => got.Set();
            Emit(c, "Custom", null, 1);
            Check(got.Wait(WaitMs), "an event came");
            Equal(State.Disconnected, Await(c.GetStateAsync(), "GetStateAsync").State, "GetStateAsync");
            var other = new Client();
            other.EventReceived += (s, e) => other.Dispose();
            Emit(other, "Custom", null, 1);
        }

        // The process's end while a synchronous call waits on a background thread for a
        // service that answers 8 s late (test_dotnet.c): the exit handler does not wait for the
        // call (on .NET nothing else would hold the exit up; Mono waits for the call itself).
        private static void ExitBusyCase()
        {
            var c = new Client();
            var call = new Thread(() =>
            {
                try
                {
                    c.GetState();
                }
                catch (Exception)
                {
                }
            });
            call.IsBackground = true;
            call.Start();
            FieldInfo busy = typeof(Client).GetField("busy", BindingFlags.NonPublic | BindingFlags.Instance);
            DateTime deadline = DateTime.UtcNow.AddMilliseconds(WaitMs);
            while ((int)busy.GetValue(c) == 0)
            {
                Check(DateTime.UtcNow < deadline, "the call started");
                Thread.Sleep(5);
            }
            MethodInfo atExit = typeof(Client).GetMethod("AtExit", BindingFlags.NonPublic | BindingFlags.Static);
            var watch = System.Diagnostics.Stopwatch.StartNew();
            atExit.Invoke(null, new object[] { null, System.EventArgs.Empty });
            Check(watch.ElapsedMilliseconds < 4000,
                  "the exit handler returned while the call runs: " + watch.ElapsedMilliseconds + " ms");
            Check(call.IsAlive, "the call is still running");
            try
            {
                c.GetState();
                throw new Exception("a call after the exit handler");
            }
            catch (ObjectDisposedException)
            {
            }
        }

        // ---- cancellation, against test_dotnet.c's fake command pipe: it lists each command
        // it receives (in $PIPEMSG_TEST_SEEN), answers Ok, and holds Slow unanswered for 30 s
        // unless the client closes its connection. The library waits 180 s for an answer, so a
        // call that goes on within PromptMs did not wait behind one given up.

        private const int PromptMs = 8000;

        private static string Seen()
        {
            string path = Environment.GetEnvironmentVariable("PIPEMSG_TEST_SEEN");
            return File.Exists(path) ? string.Join(",", File.ReadAllLines(path)) : "";
        }

        // The task ends canceled within PromptMs, naming the token.
        private static void Canceled(Task t, CancellationToken token, string what)
        {
            try
            {
                t.Wait(PromptMs);
            }
            catch (AggregateException e) when (e.InnerException is OperationCanceledException)
            {
                Equal(token, ((OperationCanceledException)e.InnerException).CancellationToken,
                      what + ": the exception's token");
            }
            Check(t.IsCanceled, what + " is canceled within " + PromptMs + " ms (" + t.Status + ")");
        }

        private static void Prompt(Task<string> t, string what)
        {
            Check(t.Wait(PromptMs), what + " completes within " + PromptMs + " ms");
            Check(t.Status == TaskStatus.RanToCompletion, what + " is answered (" + t.Status + ")");
        }

        // A call given up while it waits behind Slow: its task canceled at once, and the
        // service never gets it; Slow given up too, the next call goes on at once.
        private static void CancelQueued()
        {
            using (var c = new Client())
            using (var slowStop = new CancellationTokenSource())
            using (var queuedStop = new CancellationTokenSource())
            {
                Task<string> slow = c.CallAsync("Slow", null, slowStop.Token);
                Until(() => Seen() == "Slow", "Slow reached the service");
                Task<GetStateAnswer> queued = c.GetStateAsync(queuedStop.Token);
                queuedStop.Cancel();
                Canceled(queued, queuedStop.Token, "the call behind Slow");
                Check(!slow.IsCompleted, "Slow is still waited for");
                slowStop.Cancel();
                Canceled(slow, slowStop.Token, "Slow");
                Prompt(c.CallAsync("Echo"), "the call after them");
                Equal("Slow,Echo", Seen(), "the commands the service received");
            }
        }

        // A call in flight given up: its task canceled at once, the next call goes on. A client
        // disposed while a call it gave up is still pending does not crash.
        private static void CancelInFlight()
        {
            using (var c = new Client())
            using (var stop = new CancellationTokenSource())
            {
                Task<string> slow = c.CallAsync("Slow", null, stop.Token);
                Until(() => Seen() == "Slow", "Slow reached the service");
                stop.Cancel();
                Canceled(slow, stop.Token, "Slow in flight");
                Prompt(c.CallAsync("Echo"), "the call after it");
                Equal("Slow,Echo", Seen(), "the commands the service received");
            }
            var d = new Client();
            using (var stop = new CancellationTokenSource())
            {
                Task<string> slow = d.CallAsync("Slow", null, stop.Token);
                Until(() => Seen() == "Slow,Echo,Slow", "the second Slow reached the service");
                stop.Cancel();
                d.Dispose();
                try
                {
                    slow.Wait(PromptMs);
                }
                catch (AggregateException e) when (e.InnerException is OperationCanceledException ||
                                                   e.InnerException is ObjectDisposedException)
                {
                }
                Check(slow.IsCompleted, "a call given up then disposed completes");
            }
            using (var e = new Client())
                Prompt(e.CallAsync("Echo"), "a call of another client after that");
        }

        // A token canceled before the call: the task is canceled and nothing is sent.
        private static void CancelBefore()
        {
            using (var c = new Client())
            using (var stop = new CancellationTokenSource())
            {
                stop.Cancel();
                Task<string> call = c.CallAsync("Before", null, stop.Token);
                Canceled(call, stop.Token, "CallAsync with a canceled token");
                Task typed = c.EnableKillSwitchAsync(stop.Token);
                Canceled(typed, stop.Token, "EnableKillSwitchAsync with a canceled token");
                Prompt(c.CallAsync("Echo"), "a call after them");
                Equal("Echo", Seen(), "the commands the service received");
            }
        }

        // Dispose: pending asynchronous calls fail, later calls throw, a handler may dispose.
        private static void DisposeCase()
        {
            var c = new Client();
            var disposed = new ManualResetEventSlim();
            c.EventReceived += (s, e) =>
            {
                c.Dispose();
                disposed.Set();
            };
            Emit(c, "Custom", null, 1);
            Check(disposed.Wait(WaitMs), "a handler disposed the client");
            try
            {
                c.GetState();
                throw new Exception("a call after Dispose");
            }
            catch (ObjectDisposedException)
            {
            }
            c.Dispose();

            var d = new Client();
            Task<string> slow = d.CallAsync("Echo", "{}");
            d.Dispose();
            try
            {
                slow.Wait(WaitMs);
                Check(slow.IsCompleted, "a call in flight at Dispose completes");
            }
            catch (AggregateException e) when (e.InnerException is ObjectDisposedException)
            {
            }
        }
    }
}
