// PipeMsg.Client: the C application API (libpipemsg's pm_client) for C#. Framing, handshakes,
// deadlines and reconnection are the library's; this file moves JSON text across and turns
// results into exceptions and events into a .NET event (bindings/dotnet/README.md).
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace PipeMsg
{
    /// <summary>A result other than Ok.</summary>
    public sealed class PipeMsgException : Exception
    {
        /// <summary>The result's name: the service's Result ("TooManyRequests", "Error", ...)
        /// or one the client decided ("ConnectionTimeout", "Timeout", "TransportError",
        /// "TransportNotAuthorized", "InvalidArgument").</summary>
        public string Result { get; private set; }

        /// <summary>True when the service answered (Result and Message are its own).</summary>
        public bool FromService { get; private set; }

        /// <summary>Makes one; Message is the service's text, or why the client gave up.
        /// </summary>
        public PipeMsgException(string result, string message, bool fromService)
            : base(message)
        {
            Result = result;
            FromService = fromService;
        }
    }

    /// <summary>One event from the event pipe.</summary>
    public sealed class EventArgs : System.EventArgs
    {
        /// <summary>The event's id (increasing within an epoch).</summary>
        public long Id { get; private set; }

        /// <summary>The event type as sent ("StateChanged", ...).</summary>
        public string Type { get; private set; }

        /// <summary>The event's Data as JSON text (null when it had none); Json.Parse reads it.
        /// </summary>
        public string Data { get; private set; }

        /// <summary>The service's epoch of the id.</summary>
        public long Epoch { get; private set; }

        /// <summary>When it was published (RFC 3339), or null.</summary>
        public string Time { get; private set; }

        internal EventArgs(long id, string type, string data, long epoch, string time)
        {
            Id = id;
            Type = type;
            Data = data;
            Epoch = epoch;
            Time = time;
        }
    }

    /// <summary>A client of pipemsgd: one method per command of the contract (with an Async
    /// twin), Call for any command, and EventReceived for the event pipe. Thread-safe.</summary>
    public sealed partial class Client : IDisposable
    {
        private readonly string commandPipe;
        private readonly string eventPipe;
        private readonly object gate = new object();
        private IntPtr handle;   // commands; Zero once disposed
        private int busy;        // synchronous calls using handle now
        private bool disposed;
        private readonly HashSet<Pending> pending = new HashSet<Pending>();

        private EventHandler<EventArgs> handlers;
        private Session session; // the event pipe's client while a handler is attached
        private EventHandler<EventArgs> observers;
        private Session observer; // the observer attachment while an EventObserved handler is on

        // Which client's handlers the current thread is running (to close from elsewhere).
        [ThreadStatic] private static Client delivering;
        [ThreadStatic] private static Session current; // the session delivering on this thread

        // Static: alive as long as the program, whatever the library holds on to.
        private static readonly Native.CallCallback callDone = CallDone;

        /// <summary>Opens a client. Null pipes mean $PIPEMSG_COMMAND_PIPE /
        /// $PIPEMSG_EVENT_PIPE when set, else the standard names. Nothing is connected until a
        /// call (commands) or until a handler is attached to EventReceived (events).</summary>
        /// <exception cref="ArgumentException">A pipe name the library refuses.</exception>
        public Client(string commandPipe = null, string eventPipe = null)
        {
            this.commandPipe = commandPipe;
            this.eventPipe = eventPipe;
            handle = Open(null, false, false);
            lock (registry)
            {
                Hook();
                id = ++lastId;
                live[id] = new WeakReference(this);
            }
        }

        // ---- the process's end ---------------------------------------------------------------
        // A library thread that has run managed code (a completion, an event) is one of the
        // runtime's threads, and Mono waits for those at exit: it would wait forever for a
        // thread blocked in the library. So every client still open at exit is disposed, and
        // every event session still open is closed, when the process is about to exit
        // (ProcessExit comes before that wait).

        private static readonly object registry = new object();
        private static readonly Dictionary<long, WeakReference> live = new Dictionary<long, WeakReference>();
        private static readonly HashSet<Session> sessions = new HashSet<Session>();
        private static long lastId;
        private static bool hooked;
        private readonly long id;

        // Under the registry lock.
        private static void Hook()
        {
            if (hooked)
                return;
            AppDomain.CurrentDomain.ProcessExit += AtExit;
            hooked = true;
        }

        private static void AtExit(object sender, System.EventArgs e)
        {
            var clients = new List<Client>();
            Session[] open;
            lock (registry)
                foreach (WeakReference w in live.Values)
                {
                    var c = w.Target as Client;
                    if (c != null)
                        clients.Add(c);
                }
            foreach (Client c in clients)
                c.Shut(true);
            lock (registry)
            {
                open = new Session[sessions.Count];
                sessions.CopyTo(open);
            }
            foreach (Session x in open)
                if (x != current)
                    x.Close();
        }

        /// <summary>Closes the client: waits for synchronous calls in progress, fails pending
        /// asynchronous ones with ObjectDisposedException, detaches from the event pipe
        /// (an event whose handlers are running stays unconfirmed).</summary>
        public void Dispose()
        {
            Shut(false);
        }

        // exiting: the process is about to end. A synchronous call on another thread would hold
        // that up for as long as its timeouts (a service that does not answer: 180 s), so the
        // client is then left open (its calls still running, its callbacks' handles still valid)
        // for the process's end to take.
        private void Shut(bool exiting)
        {
            IntPtr h;
            Session s, o;
            List<Pending> dropped;
            bool left;
            lock (gate)
            {
                if (disposed)
                    return;
                disposed = true;
                handlers = null;
                s = session;
                session = null;
                observers = null;
                o = observer;
                observer = null;
                left = exiting && busy > 0;
                while (!left && busy > 0)
                    Monitor.Wait(gate);
                h = handle;
                if (!left)
                    handle = IntPtr.Zero;
            }
            lock (registry)
                live.Remove(id);
            Close(s);
            Close(o);
            if (left)
            {
                GC.SuppressFinalize(this);
                return;
            }
            Native.pm_client_close(h);
            lock (gate)
            {
                dropped = new List<Pending>(pending);
                pending.Clear();
            }
            foreach (Pending p in dropped)
            {
                p.Self.Free();
                p.Fail(new ObjectDisposedException("PipeMsg.Client"));
            }
            GC.SuppressFinalize(this);
        }

        /// <summary>Closes what Dispose would have; pending asynchronous calls and an event
        /// session keep the client reachable, so there is none here.</summary>
        ~Client()
        {
            lock (registry)
                live.Remove(id);
            if (handle != IntPtr.Zero)
                Native.pm_client_close(handle);
        }

        private IntPtr Open(Native.EventCallback onEvent, bool confirmLater, bool observe)
        {
            var cfg = new Native.Config();
            try
            {
                cfg.CommandPipe = Native.Utf8(commandPipe);
                cfg.EventPipe = Native.Utf8(eventPipe);
                cfg.ConfirmLater = (byte)(confirmLater ? 1 : 0);
                cfg.Observe = (byte)(observe ? 1 : 0);
                if (onEvent != null)
                    cfg.OnEvent = Marshal.GetFunctionPointerForDelegate(onEvent);
                IntPtr client;
                int rc = Native.pm_client_open(ref cfg, out client);
                if (rc == ErrInvalid || rc == ErrNameTooLong || rc == ErrPipeName)
                    throw new ArgumentException("a pipe name libpipemsg refuses: " +
                                                Native.FromUtf8(Native.pm_strerror(rc)));
                if (rc < 0)
                    throw new PipeMsgException("TransportError",
                                               "pm_client_open failed (PM_E code " + rc + ")", false);
                return client;
            }
            finally
            {
                Native.FreeUtf8(cfg.CommandPipe);
                Native.FreeUtf8(cfg.EventPipe);
            }
        }

        // pipemsg/error.h
        private const int ErrInvalid = -1;      // PM_EINVAL
        private const int ErrNameTooLong = -16; // PM_ENAMETOOLONG
        private const int ErrPipeName = -23;    // PM_EPIPENAME

        // ---- calls ---------------------------------------------------------------------------

        /// <summary>Any command, including those the contract does not declare: Params as JSON
        /// text (an object, or null for none). Returns the answer's Data as JSON text, or null
        /// when it had none.</summary>
        /// <exception cref="PipeMsgException">The result was not Ok.</exception>
        public string Call(string command, string paramsJson = null)
        {
            if (command == null)
                throw new ArgumentNullException("command");
            IntPtr h = Enter();
            IntPtr cmd = IntPtr.Zero, prm = IntPtr.Zero, data = IntPtr.Zero;
            try
            {
                cmd = Native.Utf8(command);
                prm = Native.Utf8(paramsJson);
                Native.Result r = Native.pm_client_call(h, cmd, prm, out data);
                if (r.Code != 0)
                    throw Native.Failure(ref r);
                return Native.FromUtf8(data);
            }
            finally
            {
                Native.pm_client_free(data);
                Native.FreeUtf8(cmd);
                Native.FreeUtf8(prm);
                Exit();
            }
        }

        /// <summary>Call's asynchronous twin: the library's call worker runs it (calls of one
        /// client in order); the task completes on the thread pool. Canceling the token gives
        /// the call up (pm_client_call_cancel): not sent if it was still waiting its turn, no
        /// longer waited for if in flight (the service may still run it), the calls after it go
        /// on at once, and the task is canceled, unless its answer came first. A token canceled
        /// already sends nothing.</summary>
        public Task<string> CallAsync(string command, string paramsJson = null,
                                      CancellationToken cancellationToken = default(CancellationToken))
        {
            if (command == null)
                throw new ArgumentNullException("command");
            return Start(command, paramsJson, (data, where) => data, cancellationToken);
        }

        private T Invoke<T>(string command, List<KeyValuePair<string, object>> parameters,
                            Func<object, string, T> decode)
        {
            string data = Call(command, parameters.Count > 0 ? Json.Write(parameters) : null);
            return Decode.Data(data, command, decode);
        }

        private void Invoke(string command, List<KeyValuePair<string, object>> parameters,
                            Func<object, string, object> decode)
        {
            Invoke<object>(command, parameters, decode);
        }

        private Task<T> InvokeAsync<T>(string command, List<KeyValuePair<string, object>> parameters,
                                       Func<object, string, T> decode, CancellationToken cancellationToken)
        {
            return Start(command, parameters.Count > 0 ? Json.Write(parameters) : null,
                         (data, where) => Decode.Data(data, where, decode), cancellationToken);
        }

        private IntPtr Enter()
        {
            lock (gate)
            {
                if (disposed)
                    throw new ObjectDisposedException("PipeMsg.Client");
                busy++;
                return handle;
            }
        }

        private void Exit()
        {
            lock (gate)
            {
                if (--busy == 0)
                    Monitor.PulseAll(gate);
            }
        }

        // One asynchronous call: reachable from its GCHandle until the library calls back or
        // the client is disposed. Its GCHandle's IntPtr is the call's data for the library,
        // distinct from every other call's while the handle is allocated (so a cancel is made
        // only while the call is in the client's pending set: the handle is freed after).
        private abstract class Pending
        {
            internal Client Owner;
            internal GCHandle Self;
            internal string Command;
            internal CancellationToken Token;
            private CancellationTokenRegistration registration;
            private bool watching, finished; // under the lock of this

            internal abstract void Complete(Native.Result r, string data);
            internal abstract void Fail(Exception e);
            internal abstract bool Canceled();

            // After the call was submitted: a cancel of the token cancels it in the library.
            internal void Watch(Client owner)
            {
                if (!Token.CanBeCanceled)
                    return;
                CancellationTokenRegistration r = Token.Register(() => owner.Cancel(this));
                lock (this)
                {
                    if (!finished)
                    {
                        registration = r;
                        watching = true;
                        return;
                    }
                }
                r.Dispose(); // the call completed before the registration was kept
            }

            // Once the task is complete: the token no longer holds the call (nor the client).
            protected void Finish()
            {
                CancellationTokenRegistration r;
                lock (this)
                {
                    finished = true;
                    if (!watching)
                        return;
                    watching = false;
                    r = registration;
                    registration = default(CancellationTokenRegistration);
                }
                r.Dispose();
            }
        }

        private sealed class Pending<T> : Pending
        {
            internal readonly TaskCompletionSource<T> Done =
                new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            internal Func<string, string, T> Decode;

            internal override void Complete(Native.Result r, string data)
            {
                Finish();
                if (r.Code == ResultCanceled)
                {
                    Done.TrySetCanceled(Token);
                    return;
                }
                if (r.Code != 0)
                {
                    Done.TrySetException(Native.Failure(ref r));
                    return;
                }
                Func<string, string, T> decode = Decode;
                Decode = null; // it may hold the client
                try
                {
                    Done.TrySetResult(decode(data, Command));
                }
                catch (Exception e)
                {
                    Done.TrySetException(e);
                }
            }

            internal override void Fail(Exception e)
            {
                Finish();
                Done.TrySetException(e);
            }

            // The library canceled it: the task says so now; the callback still comes later
            // (with Canceled) and frees the handle.
            internal override bool Canceled()
            {
                return Done.TrySetCanceled(Token);
            }
        }

        private Task<T> Start<T>(string command, string paramsJson, Func<string, string, T> decode,
                                 CancellationToken cancellationToken)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                // Given up before it began: nothing is sent.
                var given = new TaskCompletionSource<T>();
                given.TrySetCanceled(cancellationToken);
                return given.Task;
            }
            var p = new Pending<T> { Owner = this, Command = command, Decode = decode,
                                     Token = cancellationToken };
            IntPtr cmd = Native.Utf8(command), prm = IntPtr.Zero;
            try
            {
                prm = Native.Utf8(paramsJson);
                lock (gate)
                {
                    if (disposed)
                        throw new ObjectDisposedException("PipeMsg.Client");
                    p.Self = GCHandle.Alloc(p);
                    pending.Add(p);
                    // Under the lock: Dispose cannot close the handle in between, and the
                    // callback (on the library's worker) waits for the lock to find p.
                    int rc = Native.pm_client_call_async(handle, cmd, prm, callDone,
                                                         GCHandle.ToIntPtr(p.Self));
                    if (rc < 0)
                    {
                        pending.Remove(p);
                        p.Self.Free();
                        throw new PipeMsgException(rc == ErrInvalid ? "InvalidArgument" : "TransportError",
                                                   "pm_client_call_async failed (PM_E code " + rc + ")",
                                                   false);
                    }
                }
            }
            finally
            {
                Native.FreeUtf8(cmd);
                Native.FreeUtf8(prm);
            }
            p.Watch(this);
            return p.Done.Task;
        }

        // pm_result_code's PM_RC_CANCELED (pipemsg/client.h).
        private const int ResultCanceled = 105;

        // The token of p was canceled (on the thread that canceled it, or at Watch when it was
        // already). Only while p is pending: its handle is then still allocated, so its value is
        // p's alone; after Dispose the library's client is gone (Dispose fails p itself).
        private void Cancel(Pending p)
        {
            bool canceled = false;
            lock (gate)
            {
                if (!disposed && pending.Contains(p))
                    canceled = Native.pm_client_call_cancel(handle, GCHandle.ToIntPtr(p.Self)) > 0;
            }
            // Canceled: the task completes now, not when the library's loop gets to the
            // callback. Not canceled: the result came first, and the callback brings it.
            if (canceled)
                p.Canceled();
        }

        // On the library's call worker: nothing may throw back into C.
        private static unsafe void CallDone(IntPtr client, IntPtr result, IntPtr dataJson, IntPtr data)
        {
            try
            {
                Background();
                var p = (Pending)GCHandle.FromIntPtr(data).Target;
                bool mine;
                lock (p.Owner.gate)
                    mine = p.Owner.pending.Remove(p);
                // The library's thread may keep p reachable a while (Mono scans its stack): p
                // must not keep the client alive (unreachable, it is finalized, which ends that
                // thread).
                p.Owner = null;
                if (!mine)
                    return; // Dispose failed it already
                p.Self.Free();
                Native.Result r = *(Native.Result*)result;
                string text = null;
                try
                {
                    text = r.Code == 0 ? Native.FromUtf8(dataJson) : null;
                }
                catch (Exception e)
                {
                    p.Fail(e);
                    return;
                }
                p.Complete(r, text);
            }
            catch (Exception e)
            {
                Report(e);
            }
        }

        // ---- events --------------------------------------------------------------------------

        /// <summary>Events from the event pipe, on the library's event thread. Attaching the
        /// first handler attaches the client to the event pipe; removing the last detaches it.
        /// An event is confirmed when the handlers return. A handler that throws leaves its
        /// event unconfirmed: every handler is removed and the client detaches, so the
        /// service keeps the event for the next attach; EventHandlerFailed gets the exception.
        /// </summary>
        public event EventHandler<EventArgs> EventReceived
        {
            add { Attach(ref handlers, ref session, value, false); }
            remove { Detach(ref handlers, ref session, value); }
        }

        /// <summary>Events from the event pipe as an observer (protocol §5.11), on the library's
        /// event thread: every event published while a handler is attached, none confirmed,
        /// none taken from the service's queue, and the client slot left to the application's
        /// EventReceived (of this or another process), which still gets every event. Attaching
        /// the first handler attaches the observer; removing the last detaches it. It may run
        /// beside EventReceived on another thread. A handler that throws removes every
        /// EventObserved handler (EventHandlerFailed gets the exception); the events missed
        /// while detached are not seen again. The service takes up to 8 observers and cuts off
        /// one that reads too slowly (it reattaches).</summary>
        public event EventHandler<EventArgs> EventObserved
        {
            add { Attach(ref observers, ref observer, value, true); }
            remove { Detach(ref observers, ref observer, value); }
        }

        // The first handler of a list opens its session; under the gate.
        private void Attach(ref EventHandler<EventArgs> list, ref Session slot,
                            EventHandler<EventArgs> value, bool observe)
        {
            lock (gate)
            {
                if (disposed)
                    throw new ObjectDisposedException("PipeMsg.Client");
                list += value;
                if (slot != null || list == null)
                    return;
                try
                {
                    slot = new Session(this, observe);
                }
                catch
                {
                    list -= value;
                    throw;
                }
            }
        }

        // Removing the last handler of a list closes its session (outside the gate).
        private void Detach(ref EventHandler<EventArgs> list, ref Session slot,
                            EventHandler<EventArgs> value)
        {
            Session s = null;
            lock (gate)
            {
                list -= value;
                if (list == null)
                {
                    s = slot;
                    slot = null;
                }
            }
            Close(s);
        }

        /// <summary>An EventReceived or EventObserved handler threw (the exception is
        /// e.GetException()); the client has detached that attachment from the event pipe. Runs
        /// on the event thread; what it throws is dropped.</summary>
        public event EventHandler<ErrorEventArgs> EventHandlerFailed;

        // One attachment to the event pipe: its own pm_client, and the delegate the library
        // calls, kept from the collector until that pm_client is closed.
        private sealed class Session
        {
            internal readonly IntPtr Handle;
            private readonly Native.EventCallback callback;
            private GCHandle keep;
            private int closed;

            internal readonly bool Observer;

            internal Session(Client owner, bool observe)
            {
                Observer = observe;
                callback = owner.OnEvent;
                keep = GCHandle.Alloc(callback);
                try
                {
                    Handle = owner.Open(callback, !observe, observe);
                }
                catch
                {
                    keep.Free();
                    throw;
                }
                lock (registry)
                    sessions.Add(this);
            }

            // Once, from whichever of Dispose, the pool or the process's end comes first.
            internal void Close()
            {
                if (Interlocked.Exchange(ref closed, 1) != 0)
                    return;
                Native.pm_client_close(Handle);
                keep.Free();
                lock (registry)
                    sessions.Remove(this);
            }
        }

        // pm_client_close waits for the event thread, so a session is never closed on it: a
        // handler that removes itself (or disposes the client) has it closed on the pool.
        private void Close(Session s)
        {
            if (s == null)
                return;
            if (delivering != null)
                ThreadPool.QueueUserWorkItem(_ => s.Close());
            else
                s.Close();
        }

        // On the library's event thread: nothing may throw back into C.
        private void OnEvent(IntPtr client, IntPtr ev, IntPtr data)
        {
            try
            {
                Background();
                EventHandler<EventArgs> h;
                Session s;
                lock (gate)
                {
                    // A session being closed (the last handler gone) delivers nothing more.
                    if (session != null && session.Handle == client)
                    {
                        h = handlers;
                        s = session;
                    }
                    else if (observer != null && observer.Handle == client)
                    {
                        h = observers;
                        s = observer;
                    }
                    else
                        return;
                }
                var head = (Native.EventHead)Marshal.PtrToStructure(ev, typeof(Native.EventHead));
                var e = new EventArgs(head.Id, Native.FromUtf8(head.TypeName),
                                      Native.FromUtf8(head.DataJson), head.Epoch,
                                      Native.FromUtf8(head.Time));
                delivering = this;
                current = s;
                try
                {
                    h(this, e);
                }
                catch (Exception failure)
                {
                    HandlerFailed(s, failure);
                    return;
                }
                finally
                {
                    delivering = null;
                    current = null;
                }
                // Not after Dispose or the last handler's removal began: an event whose
                // handlers were running then stays unconfirmed, for the next client. Under the
                // lock, so that closing cannot come in between.
                if (!s.Observer)
                    lock (gate)
                        if (s == session)
                            Native.pm_client_confirm_epoch(client, e.Epoch, e.Id);
            }
            catch (Exception e)
            {
                Report(e);
            }
        }

        private void HandlerFailed(Session failed, Exception failure)
        {
            Session s = null;
            lock (gate)
            {
                if (failed == session)
                {
                    handlers = null;
                    s = session;
                    session = null;
                }
                else if (failed == observer)
                {
                    observers = null;
                    s = observer;
                    observer = null;
                }
            }
            if (s != null)
                ThreadPool.QueueUserWorkItem(_ => s.Close());
            EventHandler<ErrorEventArgs> f = EventHandlerFailed;
            if (f == null)
                return;
            try
            {
                f(this, new ErrorEventArgs(failure));
            }
            catch (Exception e)
            {
                Report(e);
            }
        }

        // A library thread that runs managed code becomes a thread of the runtime, and Mono
        // waits for such threads at exit unless they are background ones. A session closed on
        // the pool (by a handler that disposed its client) may still be open then.
        private static void Background()
        {
            if (!Thread.CurrentThread.IsBackground)
                Thread.CurrentThread.IsBackground = true;
        }

        // The last resort on a library thread, where an exception must not unwind into C. A
        // thread abort is Mono stopping the runtime at exit: nothing to say.
        private static void Report(Exception e)
        {
            if (e is ThreadAbortException)
                return;
            try
            {
                Console.Error.WriteLine("PipeMsg: dropped on a library thread: " + e);
            }
            catch (Exception)
            {
                // stderr itself failed: nothing is left to tell
            }
        }
    }

    // Reading Data (parsed JSON) into the generated classes; a mismatch is the answer being
    // malformed, as the C client calls it.
    internal static class Decode
    {
        internal static T Data<T>(string json, string command, Func<object, string, T> decode)
        {
            object v;
            try
            {
                v = json == null ? null : Json.Parse(json);
            }
            catch (FormatException e)
            {
                throw Malformed(command + " Data: " + e.Message);
            }
            return decode(v, command);
        }

        internal static object NoData(object value, string where)
        {
            return null;
        }

        internal static PipeMsgException Malformed(string why)
        {
            return new PipeMsgException("TransportError", "malformed answer: " + why, false);
        }

        internal static Dictionary<string, object> Fields(object v, string where)
        {
            var o = v as Dictionary<string, object>;
            if (o == null)
                throw Malformed(where + " is not an object");
            return o;
        }

        private static object Get(Dictionary<string, object> o, string name, string where, bool required)
        {
            object v;
            if (o.TryGetValue(name, out v) && v != null)
                return v;
            if (required)
                throw Malformed(where + " missing");
            return null;
        }

        internal static string String(Dictionary<string, object> o, string name, string where, bool required)
        {
            object v = Get(o, name, where, required);
            if (v != null && !(v is string))
                throw Malformed(where + " is not a string");
            return (string)v;
        }

        internal static string JsonText(Dictionary<string, object> o, string name, string where, bool required)
        {
            object v = Get(o, name, where, required);
            return v == null ? null : Json.Write(v);
        }

        internal static bool? OptionalBool(Dictionary<string, object> o, string name, string where)
        {
            object v = Get(o, name, where, false);
            if (v != null && !(v is bool))
                throw Malformed(where + " is not a boolean");
            return (bool?)v;
        }

        internal static bool Bool(Dictionary<string, object> o, string name, string where)
        {
            Get(o, name, where, true);
            return OptionalBool(o, name, where).Value;
        }

        internal static long? OptionalInt(Dictionary<string, object> o, string name, string where)
        {
            object v = Get(o, name, where, false);
            if (v != null && !(v is long))
                throw Malformed(where + " is not an integer");
            return (long?)v;
        }

        internal static long Int(Dictionary<string, object> o, string name, string where)
        {
            Get(o, name, where, true);
            return OptionalInt(o, name, where).Value;
        }

        internal static T Object<T>(Dictionary<string, object> o, string name, string where, bool required,
                                    Func<object, string, T> decode) where T : class
        {
            object v = Get(o, name, where, required);
            return v == null ? null : decode(v, where);
        }

        private static List<object> List(Dictionary<string, object> o, string name, string where, bool required)
        {
            object v = Get(o, name, where, required);
            if (v != null && !(v is List<object>))
                throw Malformed(where + " is not a list");
            return (List<object>)v;
        }

        internal static IReadOnlyList<string> Strings(Dictionary<string, object> o, string name, string where,
                                                      bool required)
        {
            List<object> a = List(o, name, where, required);
            if (a == null)
                return null;
            var r = new List<string>(a.Count);
            foreach (object x in a)
            {
                if (!(x is string))
                    throw Malformed(where + "[" + r.Count + "] is not a string");
                r.Add((string)x);
            }
            return r.AsReadOnly();
        }

        internal static IReadOnlyList<T> Objects<T>(Dictionary<string, object> o, string name, string where,
                                                    bool required, Func<object, string, T> decode)
        {
            List<object> a = List(o, name, where, required);
            if (a == null)
                return null;
            var r = new List<T>(a.Count);
            foreach (object x in a)
                r.Add(decode(x, where + "[" + r.Count + "]"));
            return r.AsReadOnly();
        }
    }

    internal static class Encode
    {
        internal static List<object> Strings(IEnumerable<string> items)
        {
            var r = new List<object>();
            foreach (string s in items)
            {
                if (s == null)
                    throw new ArgumentException("a list item is null");
                r.Add(s);
            }
            return r;
        }
    }
}
