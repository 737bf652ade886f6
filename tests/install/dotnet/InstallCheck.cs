// test_install (tests/install/check_install.sh): a program built against the installed
// PipeMsg.dll. It makes a call the library refuses by itself (Params that are not an object),
// so the native library answers without a service, then prints the path of the libpipemsg
// that Mono loaded through the installed PipeMsg.dll.config.
using System;
using System.IO;
using PipeMsg;

internal static class InstallCheck
{
    private static int Main()
    {
        using (var c = new Client())
        {
            try
            {
                c.Call("Echo", "[1]");
                Console.Error.WriteLine("InstallCheck: Params [1] were not refused");
                return 1;
            }
            catch (PipeMsgException e)
            {
                if (e.Result != "InvalidArgument" || e.FromService)
                {
                    Console.Error.WriteLine("InstallCheck: unexpected " + e.Result + ": " + e.Message);
                    return 1;
                }
            }
        }
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
        {
            int path = line.IndexOf('/');
            if (path >= 0 && line.Contains("libpipemsg"))
            {
                Console.WriteLine(line.Substring(path));
                return 0;
            }
        }
        Console.Error.WriteLine("InstallCheck: no libpipemsg mapped");
        return 1;
    }
}
