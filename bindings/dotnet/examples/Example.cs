// PipeMsgExample.exe [LOCATION]: prints the VPN state; with a location, starts the VPN there
// and prints each state change until Connected (exit 0) or a failure (exit 1).
using System;
using System.Threading;
using PipeMsg;

internal static class Example
{
    private static int Main(string[] args)
    {
        using (var client = new Client())
        {
            try
            {
                Console.WriteLine(client.GetState().State);
                if (args.Length == 0)
                    return 0;
                var outcome = new ManualResetEventSlim();
                bool connected = false;
                client.EventReceived += (sender, e) =>
                {
                    if (e.Type != "StateChanged")
                        return;
                    var data = (System.Collections.Generic.Dictionary<string, object>)Json.Parse(e.Data);
                    Console.WriteLine(data["State"]);
                    if ((string)data["State"] == "Connected" || data.ContainsKey("Error"))
                    {
                        connected = data.ContainsKey("Error") == false;
                        outcome.Set();
                    }
                };
                client.StartVpn(args[0]);
                outcome.Wait();
                return connected ? 0 : 1;
            }
            catch (PipeMsgException e)
            {
                Console.Error.WriteLine(e.Result + ": " + e.Message);
                return 1;
            }
        }
    }
}
