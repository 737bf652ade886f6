// The C application API (include/pipemsg/client.h) as P/Invoke declarations. Only fixed-layout
// structs cross the boundary, each checked against the C compiler's offsets by the test
// dotnet_layout; strings cross as UTF-8 by hand, the same on Mono, .NET Framework and .NET.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace PipeMsg
{
    internal static class Native
    {
        // The library's file name without extension: libpipemsg.so.0 through PipeMsg.dll.config
        // on Mono, libpipemsg.dll (mingw's name) beside the application on Windows; see README.md.
        internal const string Library = "libpipemsg";

        internal const int ResultNameMax = 64;    // PM_RESULT_NAME_MAX
        internal const int ResultMessageMax = 512; // PM_RESULT_MESSAGE_MAX

        // pm_result. bool is one byte in C: a byte here keeps the struct blittable, so it can be
        // returned by value on every runtime.
        [StructLayout(LayoutKind.Sequential)]
        internal unsafe struct Result
        {
            public int Code;
            public byte FromService;
            public int Error;
            public fixed byte Name[ResultNameMax];
            public fixed byte Message[ResultMessageMax];
        }

        // pm_client_config.
        [StructLayout(LayoutKind.Sequential)]
        internal struct Config
        {
            public IntPtr CommandPipe;
            public IntPtr EventPipe;
            public uint ConnectTimeoutMs;
            public uint ResponseTimeoutMs;
            public uint HandshakeTimeoutMs;
            public uint ReconnectMinMs;
            public uint ReconnectMaxMs;
            public IntPtr ExpectOwner;
            public int Drive;
            public IntPtr OnEvent;
            public IntPtr OnConnection;
            public byte ConfirmLater;
            public byte Observe;
            public int Start;
            public long ResumeEpoch;
            public long ResumeLastId;
            public IntPtr ClientName;
            public IntPtr Data;
        }

        // The leading fields of pm_client_event, which is all the binding reads (the typed union
        // that follows is C's view of the same Data).
        [StructLayout(LayoutKind.Sequential)]
        internal struct EventHead
        {
            public int Type;
            public IntPtr TypeName;
            public long Id;
            public long Epoch;
            public IntPtr Time;
            public IntPtr DataJson;
        }

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void EventCallback(IntPtr client, IntPtr ev, IntPtr data);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void CallCallback(IntPtr client, IntPtr result, IntPtr dataJson,
                                            IntPtr data);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pm_client_open(ref Config config, out IntPtr client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pm_client_close(IntPtr client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr pm_strerror(int code);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Result pm_client_call(IntPtr client, IntPtr command,
                                                     IntPtr paramsJson, out IntPtr dataJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pm_client_call_async(IntPtr client, IntPtr command,
                                                        IntPtr paramsJson, CallCallback cb,
                                                        IntPtr data);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pm_client_call_cancel(IntPtr client, IntPtr data);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void pm_client_free(IntPtr p);

        // With the event's epoch (not pm_client_confirm): an event of an earlier epoch never
        // confirms the new epoch's event with the same id.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int pm_client_confirm_epoch(IntPtr client, long epoch, long id);

        // NUL-terminated UTF-8 on the unmanaged heap (null for null); free with FreeUtf8. A NUL
        // inside would cut the string short in C (a command "GetState\0x" would run GetState,
        // Params JSON would lose its end), and a lone surrogate is not text: both throw
        // ArgumentException (the encoder's EncoderFallbackException is one).
        internal static IntPtr Utf8(string s)
        {
            if (s == null)
                return IntPtr.Zero;
            if (s.IndexOf('\0') >= 0)
                throw new ArgumentException("a string with a NUL character cannot be passed to libpipemsg");
            byte[] bytes = new UTF8Encoding(false, true).GetBytes(s);
            IntPtr p = Marshal.AllocHGlobal(bytes.Length + 1);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            Marshal.WriteByte(p, bytes.Length, 0);
            return p;
        }

        internal static void FreeUtf8(IntPtr p)
        {
            if (p != IntPtr.Zero)
                Marshal.FreeHGlobal(p);
        }

        internal static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0)
                n++;
            byte[] bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        internal static unsafe string FromUtf8(byte* p, int size)
        {
            int n = 0;
            while (n < size && p[n] != 0)
                n++;
            return Encoding.UTF8.GetString(p, n);
        }

        internal static unsafe PipeMsgException Failure(ref Result r)
        {
            fixed (byte* name = r.Name)
            fixed (byte* message = r.Message)
            {
                return new PipeMsgException(FromUtf8(name, ResultNameMax),
                                            FromUtf8(message, ResultMessageMax),
                                            r.FromService != 0);
            }
        }
    }
}
