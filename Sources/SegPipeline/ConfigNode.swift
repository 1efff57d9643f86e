import SegAugment
import SegCore
import Yams

/// A node of a parsed pipeline file with its key path and line, and typed accessors whose
/// errors name the file, the line and the key.
struct ConfigNode {
  let node: Node
  let file: String
  let keyPath: String

  var line: Int? { node.mark?.line }

  func error(_ code: PipelineError.Code, _ message: String, hint: String? = nil) -> PipelineError {
    PipelineError(code, path: file, line: line, key: keyPath, message, hint: hint)
  }

  /// Parses YAML text into the root node, within `limits` (see ``YAMLGuard``).
  static func parse(_ text: String, file: String, limits: PipelineLimits) throws(PipelineError) -> ConfigNode {
    try YAMLGuard.prescan(text, file: file, limits: limits)
    do {
      guard let root = try Yams.compose(yaml: text) else {
        throw PipelineError(.syntax, path: file, line: 1, "the file is empty")
      }
      try YAMLGuard.countNodes(root, file: file, limits: limits)
      return ConfigNode(node: root, file: file, keyPath: "")
    } catch let e as PipelineError {
      throw e
    } catch let e as YamlError {
      switch e {
      case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
        .composer(_, let problem, let mark, _):
        throw PipelineError(.syntax, path: file, line: mark.line, "YAML syntax error: \(problem)")
      case .duplicatedKeysInMapping(let duplicates, let context):
        throw PipelineError(
          .syntax, path: file, line: context.mark.line, key: duplicates.first,
          "this key appears more than once in its mapping")
      default:
        throw PipelineError(.syntax, path: file, "YAML error: \(e)")
      }
    } catch {
      throw PipelineError(.syntax, path: file, "YAML error: \(error)")
    }
  }

  // MARK: Mappings

  /// The mapping's entries, after checking every key is one of `allowed`.
  func mapping(allowed: [String]) throws(PipelineError) -> [String: ConfigNode] {
    guard case .mapping(let m) = node else {
      throw error(.wrongType, "expected a mapping (key: value lines), found \(kind)")
    }
    var out: [String: ConfigNode] = [:]
    for (k, v) in m {
      guard let key = k.string else {
        throw ConfigNode(node: k, file: file, keyPath: keyPath).error(.wrongType, "mapping keys must be strings")
      }
      let child = ConfigNode(node: v, file: file, keyPath: keyPath.isEmpty ? key : keyPath + "." + key)
      guard allowed.contains(key) else {
        let keyNode = ConfigNode(node: k, file: file, keyPath: child.keyPath)
        throw keyNode.error(
          .unknownKey, "unknown key", hint: ConfigNode.suggestion(key, allowed) ?? "allowed: \(allowed.joined(separator: ", "))")
      }
      out[key] = child
    }
    return out
  }

  /// A "did you mean" for a mistyped key (edit distance ≤ 2).
  static func suggestion(_ key: String, _ allowed: [String]) -> String? {
    func distance(_ a: String, _ b: String) -> Int {
      let a = Array(a)
      let b = Array(b)
      var row = Array(0...b.count)
      for i in 1...max(a.count, 1) where i <= a.count {
        var prev = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where j <= b.count {
          let cur = row[j]
          row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
          prev = cur
        }
      }
      return row[b.count]
    }
    let best = allowed.map { ($0, distance(key, $0)) }.min { $0.1 < $1.1 }
    // Up to 2 edits, or 3 for longer words ("rotation" for "rotate").
    guard let best, best.1 <= (min(key.count, best.0.count) >= 6 ? 3 : 2) else { return nil }
    return "did you mean \(best.0)?"
  }

  var isNull: Bool {
    if case .scalar(let s) = node { return tagIs(node, .null) || s.string == "~" || s.string.isEmpty && tagIs(node, .null) }
    return false
  }

  var kind: String {
    switch node {
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    case .scalar(let s):
      if tagIs(node, .null) { return "nothing (null)" }
      return "\"\(s.string)\""
    case .alias: return "an alias"
    }
  }

  // MARK: Scalars

  func string() throws(PipelineError) -> String {
    guard case .scalar(let s) = node, !tagIs(node, .null) else {
      throw error(.wrongType, "expected a string, found \(kind)")
    }
    return s.string
  }

  func double() throws(PipelineError) -> Double {
    guard case .scalar(let s) = node, tagIs(node, .int) || tagIs(node, .float),
      let v = Double(s.string.replacingOccurrences(of: "_", with: "")), v.isFinite
    else {
      throw error(.wrongType, "expected a number, found \(kind)")
    }
    return v
  }

  func int() throws(PipelineError) -> Int {
    guard case .scalar(let s) = node, tagIs(node, .int), let v = Int(s.string.replacingOccurrences(of: "_", with: "")) else {
      throw error(.wrongType, "expected a whole number, found \(kind)")
    }
    return v
  }

  func bool() throws(PipelineError) -> Bool {
    guard case .scalar(let s) = node, tagIs(node, .bool) else {
      throw error(.wrongType, "expected true or false, found \(kind)")
    }
    return ["true", "yes", "on", "y"].contains(s.string.lowercased())
  }

  func list() throws(PipelineError) -> [ConfigNode] {
    guard case .sequence(let seq) = node else { throw error(.wrongType, "expected a list, found \(kind)") }
    return seq.enumerated().map { ConfigNode(node: $1, file: file, keyPath: keyPath + "[\($0)]") }
  }

  /// A string or a list of strings.
  func strings() throws(PipelineError) -> [String] {
    if case .sequence = node {
      var out: [String] = []
      for item in try list() { out.append(try item.string()) }
      return out
    }
    return [try string()]
  }

  /// One of the enum's raw values.
  func choice<T: RawRepresentable & CaseIterable>(_: T.Type) throws(PipelineError) -> T where T.RawValue == String {
    let s = try string()
    guard let v = T(rawValue: s) else {
      throw error(.outOfRange, "\"\(s)\" is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return v
  }

  /// A fixed number or a [low, high] range.
  func range() throws(PipelineError) -> ParameterRange {
    if case .sequence = node {
      let items = try list()
      guard items.count == 2 else { throw error(.wrongType, "a range is a list of two numbers [low, high]") }
      let lo = try items[0].double()
      let hi = try items[1].double()
      guard lo <= hi else { throw error(.outOfRange, "range [\(lo), \(hi)]: low is above high") }
      return ParameterRange(lo, hi)
    }
    return .fixed(try double())
  }

  // MARK: Checks

  func check(_ ok: Bool, _ message: @autoclosure () -> String) throws(PipelineError) {
    if !ok { throw error(.outOfRange, message()) }
  }

  func probability() throws(PipelineError) -> Double {
    let p = try double()
    try check(p >= 0 && p <= 1, "a probability must lie in [0, 1], not \(p)")
    return p
  }

  func range(within limits: ClosedRange<Double>, _ what: String) throws(PipelineError) -> ParameterRange {
    let r = try range()
    try check(
      limits.contains(r.lower) && limits.contains(r.upper),
      "\(what) must lie in [\(limits.lowerBound), \(limits.upperBound)], not \(r)")
    return r
  }
}

/// Whether a node's resolved tag is `name` (`Node.tag` resolves implicit tags; Yams keeps
/// `Tag.name` internal, so compare raw values).
func tagIs(_ node: Node, _ name: Tag.Name) -> Bool {
  node.tag.rawValue == name.rawValue
}

/// A mapping's entries with typed getters for optional and required keys.
struct ConfigMapping {
  let owner: ConfigNode
  let entries: [String: ConfigNode]

  init(_ node: ConfigNode, allowed: [String]) throws(PipelineError) {
    owner = node
    entries = node.isNull ? [:] : try node.mapping(allowed: allowed)
  }

  subscript(key: String) -> ConfigNode? { entries[key].flatMap { $0.isNull ? nil : $0 } }

  func required(_ key: String) throws(PipelineError) -> ConfigNode {
    guard let v = self[key] else { throw owner.error(.missingKey, "missing required key \"\(key)\"") }
    return v
  }
}
