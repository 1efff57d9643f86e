import SegCore

/// Writes a ``JSONValue`` as block-style YAML (objects as `key: value` lines, arrays of
/// objects as `- ` items, arrays of scalars in flow style `[a, b]`), keys in order.
///
/// Every string is double-quoted with JSON escapes, which YAML 1.1 and 1.2 read alike, so no
/// value can turn into a boolean, a number or a null by accident ("no", "1e3", "null"). Floats
/// always carry a decimal point (YAML 1.1 resolvers read `1e-06` as a string).
public enum YAMLWriter {
  /// The document, ending with a newline.
  public static func document(_ value: JSONValue) -> String {
    var out = ""
    switch value {
    case .object(let pairs) where !pairs.isEmpty: writeObject(pairs, indent: 0, to: &out)
    case .array(let items) where !items.isEmpty && !items.allSatisfy(\.isScalar): writeArray(items, indent: 0, to: &out)
    default: out += scalar(value) + "\n"
    }
    return out
  }

  private static func writeObject(_ pairs: [(String, JSONValue)], indent: Int, to out: inout String) {
    let pad = String(repeating: " ", count: indent)
    for (key, value) in pairs {
      out += pad + Self.key(key) + ":"
      writeValue(value, indent: indent, to: &out)
    }
  }

  /// After `key:` or `- `: a scalar on the same line, or a block on the next lines.
  private static func writeValue(_ value: JSONValue, indent: Int, to out: inout String) {
    switch value {
    case .object(let pairs) where !pairs.isEmpty:
      out += "\n"
      writeObject(pairs, indent: indent + 2, to: &out)
    case .array(let items) where !items.isEmpty && !items.allSatisfy(\.isScalar):
      out += "\n"
      writeArray(items, indent: indent + 2, to: &out)
    default:
      out += " " + scalar(value) + "\n"
    }
  }

  private static func writeArray(_ items: [JSONValue], indent: Int, to out: inout String) {
    let pad = String(repeating: " ", count: indent)
    for item in items {
      switch item {
      case .object(let pairs) where !pairs.isEmpty:
        // The first key shares the dash's line; the rest line up under it.
        var first = ""
        writeObject([pairs[0]], indent: indent + 2, to: &first)
        out += pad + "- " + first.dropFirst(indent + 2)
        writeObject(Array(pairs.dropFirst()), indent: indent + 2, to: &out)
      case .array(let inner) where !inner.isEmpty && !inner.allSatisfy(\.isScalar):
        out += pad + "-\n"
        writeArray(inner, indent: indent + 2, to: &out)
      default:
        out += pad + "- " + scalar(item) + "\n"
      }
    }
  }

  /// A key: plain when it is a simple identifier, quoted otherwise.
  static func key(_ k: String) -> String {
    let simple = !k.isEmpty && k.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
      && !("0"..."9").contains(k.unicodeScalars.first ?? "0")
    return simple ? k : JSONValue.string(k).serialized()
  }

  /// A scalar, or an empty or all-scalar collection in flow style.
  static func scalar(_ v: JSONValue) -> String {
    switch v {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .double(let d):
      guard d.isFinite else { return "null" }
      var text = JSONValue.double(d).serialized()
      if text.contains("e"), !text.contains(".") {
        text = text.replacingFirst("e", with: ".0e")
      }
      return text
    case .string: return v.serialized()
    case .array(let items): return "[" + items.map(scalar).joined(separator: ", ") + "]"
    case .object(let pairs): return "{" + pairs.map { key($0.0) + ": " + scalar($0.1) }.joined(separator: ", ") + "}"
    }
  }
}

extension JSONValue {
  /// Not an object or array with contents.
  var isScalar: Bool {
    switch self {
    case .object(let p): return p.isEmpty
    case .array(let a): return a.isEmpty
    default: return true
    }
  }
}

extension String {
  fileprivate func replacingFirst(_ target: Character, with replacement: String) -> String {
    guard let i = firstIndex(of: target) else { return self }
    return String(self[..<i]) + replacement + String(self[index(after: i)...])
  }
}
