// A small strict JSON (RFC 8259) reader and writer: C# 7 on Mono and .NET Framework has no
// common built-in one, and the binding needs only the values the protocol carries.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace PipeMsg
{
    /// <summary>JSON text to and from plain values: an object is a Dictionary&lt;string,
    /// object&gt;, an array a List&lt;object&gt;, a string a string, an integer a long (a
    /// number with a fraction or an exponent a double), true and false a bool, null null.
    /// </summary>
    public static class Json
    {
        /// <summary>Nesting deeper than this is refused, as the protocol's decoder refuses it.
        /// </summary>
        public const int MaxDepth = 64;

        /// <summary>Reads exactly one JSON value (white space around it allowed).</summary>
        /// <exception cref="FormatException">The text is not one JSON value; the message says
        /// where.</exception>
        public static object Parse(string text)
        {
            if (text == null)
                throw new ArgumentNullException("text");
            var r = new Reader(text);
            r.Space();
            object v = r.Value(0);
            r.Space();
            if (r.Pos != text.Length)
                throw r.Fail("text after the value");
            return v;
        }

        /// <summary>Writes a value as compact JSON: null, bool, string, any integer type,
        /// double or float (finite), an IDictionary with string keys or a sequence of
        /// KeyValuePair&lt;string, object&gt; (an object), any other IEnumerable (an array).
        /// </summary>
        public static string Write(object value)
        {
            var sb = new StringBuilder();
            WriteValue(sb, value, 0);
            return sb.ToString();
        }

        // depth: the containers v is inside of. Parse takes at most MaxDepth containers in all,
        // so Write makes no more.
        private static void WriteValue(StringBuilder sb, object v, int depth)
        {
            if (depth >= MaxDepth && v is IEnumerable && !(v is string))
                throw new ArgumentException("JSON nesting deeper than " + MaxDepth);
            if (v == null)
                sb.Append("null");
            else if (v is bool)
                sb.Append((bool)v ? "true" : "false");
            else if (v is string)
                WriteString(sb, (string)v);
            else if (v is long || v is int || v is short || v is sbyte || v is ulong || v is uint ||
                     v is ushort || v is byte)
                sb.Append(Convert.ToString(v, CultureInfo.InvariantCulture));
            else if (v is double || v is float)
            {
                double d = Convert.ToDouble(v, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d))
                    throw new ArgumentException("JSON has no NaN or infinity");
                string s = d.ToString("R", CultureInfo.InvariantCulture);
                // "R" writes 1E+20 and 5: both stay JSON numbers, and a double stays one.
                if (s.IndexOfAny(new[] { '.', 'E', 'e' }) < 0)
                    s += ".0";
                sb.Append(s);
            }
            else if (v is IDictionary)
            {
                sb.Append('{');
                bool first = true;
                foreach (DictionaryEntry e in (IDictionary)v)
                {
                    if (!(e.Key is string))
                        throw new ArgumentException("a JSON object's keys are strings");
                    if (!first)
                        sb.Append(',');
                    first = false;
                    WriteString(sb, (string)e.Key);
                    sb.Append(':');
                    WriteValue(sb, e.Value, depth + 1);
                }
                sb.Append('}');
            }
            else if (v is IEnumerable<KeyValuePair<string, object>>)
            {
                sb.Append('{');
                bool first = true;
                foreach (var e in (IEnumerable<KeyValuePair<string, object>>)v)
                {
                    if (!first)
                        sb.Append(',');
                    first = false;
                    WriteString(sb, e.Key);
                    sb.Append(':');
                    WriteValue(sb, e.Value, depth + 1);
                }
                sb.Append('}');
            }
            else if (v is IEnumerable)
            {
                sb.Append('[');
                bool first = true;
                foreach (object x in (IEnumerable)v)
                {
                    if (!first)
                        sb.Append(',');
                    first = false;
                    WriteValue(sb, x, depth + 1);
                }
                sb.Append(']');
            }
            else
                throw new ArgumentException("no JSON form for " + v.GetType().Name);
        }

        private static void WriteString(StringBuilder sb, string s)
        {
            if (s == null)
                throw new ArgumentException("a JSON object's keys are strings");
            sb.Append('"');
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                {
                    sb.Append(c).Append(s[++i]);
                    continue;
                }
                if (char.IsSurrogate(c))
                    throw new ArgumentException("a string with a lone surrogate is not Unicode text");
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20)
                            sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else
                            sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        private sealed class Reader
        {
            private readonly string s;
            internal int Pos;

            internal Reader(string text)
            {
                s = text;
            }

            internal FormatException Fail(string what)
            {
                return new FormatException("JSON: " + what + " at offset " + Pos);
            }

            internal void Space()
            {
                while (Pos < s.Length && (s[Pos] == ' ' || s[Pos] == '\t' || s[Pos] == '\n' ||
                                          s[Pos] == '\r'))
                    Pos++;
            }

            private void Expect(char c)
            {
                if (Pos >= s.Length || s[Pos] != c)
                    throw Fail("'" + c + "' expected");
                Pos++;
            }

            private void Word(string w)
            {
                if (string.CompareOrdinal(s, Pos, w, 0, w.Length) != 0)
                    throw Fail("not a JSON value");
                Pos += w.Length;
            }

            internal object Value(int depth)
            {
                if (Pos >= s.Length)
                    throw Fail("a value expected");
                char c = s[Pos];
                switch (c)
                {
                    case '{': return Object(depth + 1);
                    case '[': return Array(depth + 1);
                    case '"': return String();
                    case 't': Word("true"); return true;
                    case 'f': Word("false"); return false;
                    case 'n': Word("null"); return null;
                    default:
                        if (c == '-' || (c >= '0' && c <= '9'))
                            return Number();
                        throw Fail("not a JSON value");
                }
            }

            private Dictionary<string, object> Object(int depth)
            {
                if (depth > MaxDepth)
                    throw Fail("nesting deeper than " + MaxDepth);
                var o = new Dictionary<string, object>();
                Pos++;
                Space();
                if (Pos < s.Length && s[Pos] == '}')
                {
                    Pos++;
                    return o;
                }
                for (;;)
                {
                    Space();
                    if (Pos >= s.Length || s[Pos] != '"')
                        throw Fail("a member name expected");
                    int at = Pos;
                    string key = String();
                    if (o.ContainsKey(key))
                    {
                        Pos = at;
                        throw Fail("member " + key + " twice");
                    }
                    Space();
                    Expect(':');
                    Space();
                    o[key] = Value(depth);
                    Space();
                    if (Pos < s.Length && s[Pos] == ',')
                    {
                        Pos++;
                        continue;
                    }
                    Expect('}');
                    return o;
                }
            }

            private List<object> Array(int depth)
            {
                if (depth > MaxDepth)
                    throw Fail("nesting deeper than " + MaxDepth);
                var a = new List<object>();
                Pos++;
                Space();
                if (Pos < s.Length && s[Pos] == ']')
                {
                    Pos++;
                    return a;
                }
                for (;;)
                {
                    Space();
                    a.Add(Value(depth));
                    Space();
                    if (Pos < s.Length && s[Pos] == ',')
                    {
                        Pos++;
                        continue;
                    }
                    Expect(']');
                    return a;
                }
            }

            private int Hex4()
            {
                if (Pos + 4 > s.Length)
                    throw Fail("four hex digits expected");
                int v = 0;
                for (int i = 0; i < 4; i++)
                {
                    char c = s[Pos++];
                    int d = c >= '0' && c <= '9' ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                    if (d < 0)
                        throw Fail("four hex digits expected");
                    v = v * 16 + d;
                }
                return v;
            }

            private string String()
            {
                var sb = new StringBuilder();
                Pos++;
                for (;;)
                {
                    if (Pos >= s.Length)
                        throw Fail("unterminated string");
                    char c = s[Pos++];
                    if (c == '"')
                        return sb.ToString();
                    if (c < 0x20)
                        throw Fail("control character in a string");
                    if (char.IsSurrogate(c))
                    {
                        if (!char.IsHighSurrogate(c) || Pos >= s.Length || !char.IsLowSurrogate(s[Pos]))
                            throw Fail("lone surrogate in a string");
                        sb.Append(c).Append(s[Pos++]);
                        continue;
                    }
                    if (c != '\\')
                    {
                        sb.Append(c);
                        continue;
                    }
                    if (Pos >= s.Length)
                        throw Fail("unterminated string");
                    c = s[Pos++];
                    switch (c)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            int u = Hex4();
                            if (u >= 0xD800 && u <= 0xDBFF)
                            {
                                if (Pos + 2 > s.Length || s[Pos] != '\\' || s[Pos + 1] != 'u')
                                    throw Fail("lone surrogate in a string");
                                Pos += 2;
                                int low = Hex4();
                                if (low < 0xDC00 || low > 0xDFFF)
                                    throw Fail("lone surrogate in a string");
                                sb.Append((char)u).Append((char)low);
                            }
                            else if (u >= 0xDC00 && u <= 0xDFFF)
                                throw Fail("lone surrogate in a string");
                            else
                                sb.Append((char)u);
                            break;
                        default:
                            Pos--;
                            throw Fail("unknown escape");
                    }
                }
            }

            private static bool Digit(char c)
            {
                return c >= '0' && c <= '9';
            }

            private object Number()
            {
                int start = Pos;
                bool integer = true;
                if (s[Pos] == '-')
                    Pos++;
                if (Pos >= s.Length || !Digit(s[Pos]))
                    throw Fail("a digit expected");
                if (s[Pos] == '0')
                    Pos++;
                else
                    while (Pos < s.Length && Digit(s[Pos]))
                        Pos++;
                if (Pos < s.Length && s[Pos] == '.')
                {
                    integer = false;
                    Pos++;
                    if (Pos >= s.Length || !Digit(s[Pos]))
                        throw Fail("a digit expected");
                    while (Pos < s.Length && Digit(s[Pos]))
                        Pos++;
                }
                if (Pos < s.Length && (s[Pos] == 'e' || s[Pos] == 'E'))
                {
                    integer = false;
                    Pos++;
                    if (Pos < s.Length && (s[Pos] == '+' || s[Pos] == '-'))
                        Pos++;
                    if (Pos >= s.Length || !Digit(s[Pos]))
                        throw Fail("a digit expected");
                    while (Pos < s.Length && Digit(s[Pos]))
                        Pos++;
                }
                string text = s.Substring(start, Pos - start);
                if (integer)
                {
                    long l;
                    if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture,
                                       out l))
                    {
                        Pos = start;
                        throw Fail("integer out of the signed 64-bit range");
                    }
                    return l;
                }
                // Mono and .NET Framework throw on overflow, .NET Core gives infinity.
                double d;
                try
                {
                    d = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
                }
                catch (OverflowException)
                {
                    d = double.PositiveInfinity;
                }
                if (double.IsInfinity(d))
                {
                    Pos = start;
                    throw Fail("number out of range");
                }
                return d;
            }
        }
    }
}
