import SegCore
import Yams

/// Limits on what a pipeline file's YAML may make the parser do (a pipeline can come from a
/// stranger; "billion laughs" files use nested aliases to expand a few lines into 10^9 nodes).
public struct PipelineLimits: Sendable, Equatable {
  /// The most YAML nodes the document may hold with every alias expanded. Pipelines hold a few
  /// hundred; the default is far above any real one.
  public var maxNodes: Int
  /// The deepest nesting of `[`/`{` flow collections.
  public var maxFlowDepth: Int

  public static let defaultMaxNodes = 100_000

  public init(maxNodes: Int = PipelineLimits.defaultMaxNodes, maxFlowDepth: Int = 64) {
    self.maxNodes = maxNodes
    self.maxFlowDepth = maxFlowDepth
  }

  static let hint = "raise the limit with --max-yaml-nodes N if the file is genuine"
}

/// Checks a pipeline's YAML before and after Yams composes it.
///
/// Before: the text is scanned (quotes, comments and block scalars skipped) for the two things a
/// pipeline never needs and a hostile file uses: mapping keys that are not plain scalars (an
/// alias `*a:`, an explicit `? ` key, or a flow collection `[…]:` as a key; Yams hashes every
/// key's whole expanded tree to find duplicates, which an aliased key makes exponential), and
/// flow nesting deeper than `maxFlowDepth` (the composer recurses once per level). After: the
/// composed tree is walked with every alias expanded, stopping as soon as it passes `maxNodes`,
/// so the walk itself costs at most `maxNodes` steps.
enum YAMLGuard {
  static func prescan(_ text: String, file: String, limits: PipelineLimits) throws(PipelineError) {
    let bytes = Array(text.utf8)
    var i = 0
    var line = 1
    var lineStart = true
    var indent = 0
    var blockScalarIndent: Int? = nil  // inside a `|` or `>` scalar of a line indented this much
    var lastLineIndent = 0
    var flowDepth = 0
    var lastSignificant: UInt8 = UInt8(ascii: "\n")
    func refuse(_ message: String) -> PipelineError {
      PipelineError(.syntax, path: file, line: line, message, hint: "mapping keys in a pipeline are plain words")
    }
    func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
    func isBreak(_ c: UInt8) -> Bool { c == 0x0A || c == 0x0D }
    func at(_ k: Int) -> UInt8 { k >= 0 && k < bytes.count ? bytes[k] : 0x0A }
    /// A `:` that makes what precedes it a key.
    func keyColon(_ k: Int) -> Bool {
      var j = k
      while j < bytes.count, isBlank(bytes[j]) { j += 1 }
      // Conservative: any `:` right after it (a value never follows an alias or a closing
      // bracket that way in a pipeline).
      return at(j) == UInt8(ascii: ":")
    }
    while i < bytes.count {
      let c = bytes[i]
      if lineStart {
        indent = 0
        while i < bytes.count, bytes[i] == 0x20 { indent += 1; i += 1 }
        lineStart = false
        let first = at(i)
        if let block = blockScalarIndent {
          if isBreak(first) || first == 0x09 || indent > block {
            // Block scalar content (or a blank line inside it): skip the line.
            while i < bytes.count, !isBreak(bytes[i]) { i += 1 }
            continue
          }
          blockScalarIndent = nil
        }
        lastLineIndent = indent
        continue
      }
      if isBreak(c) {
        if c == 0x0A { line += 1 }
        i += 1
        lineStart = true
        lastSignificant = 0x0A
        continue
      }
      if c == UInt8(ascii: "#") && (isBlank(at(i - 1)) || isBreak(at(i - 1))) {
        while i < bytes.count, !isBreak(bytes[i]) { i += 1 }
        continue
      }
      switch c {
      case UInt8(ascii: "'"), UInt8(ascii: "\""):
        // A quoted scalar (may span lines): skip to its closing quote.
        i += 1
        while i < bytes.count {
          let q = bytes[i]
          if q == 0x0A { line += 1 }
          if c == UInt8(ascii: "\"") && q == UInt8(ascii: "\\") {
            i += 2
            continue
          }
          if q == c {
            if c == UInt8(ascii: "'") && at(i + 1) == c {
              i += 2
              continue
            }
            break
          }
          i += 1
        }
        i += 1
        lastSignificant = c
        continue
      case UInt8(ascii: "["), UInt8(ascii: "{"):
        flowDepth += 1
        if flowDepth > limits.maxFlowDepth {
          throw PipelineError(
            .syntax, path: file, line: line, "flow collections nest deeper than \(limits.maxFlowDepth) levels",
            hint: "pipelines nest a few levels")
        }
      case UInt8(ascii: "]"), UInt8(ascii: "}"):
        flowDepth = max(0, flowDepth - 1)
        if keyColon(i + 1) { throw refuse("a list or mapping used as a mapping key") }
      case UInt8(ascii: "*") where isNodeStart(lastSignificant, previous: at(i - 1)):
        var j = i + 1
        while j < bytes.count, isAnchorChar(bytes[j]) { j += 1 }
        if keyColon(j) { throw refuse("an alias (*\(String(decoding: bytes[(i + 1)..<j], as: UTF8.self))) used as a mapping key") }
        i = j
        lastSignificant = c
        continue
      case UInt8(ascii: "?") where isNodeStart(lastSignificant, previous: at(i - 1)) && (isBlank(at(i + 1)) || isBreak(at(i + 1))):
        throw refuse("an explicit `? ` mapping key")
      case UInt8(ascii: "|") where flowDepth == 0 && isNodeStart(lastSignificant, previous: at(i - 1)),
        UInt8(ascii: ">") where flowDepth == 0 && isNodeStart(lastSignificant, previous: at(i - 1)):
        // A block scalar header: the lines below indented more than this one are its text.
        var j = i + 1
        while j < bytes.count, bytes[j] == UInt8(ascii: "-") || bytes[j] == UInt8(ascii: "+") || (bytes[j] >= 0x30 && bytes[j] <= 0x39) {
          j += 1
        }
        while j < bytes.count, isBlank(bytes[j]) { j += 1 }
        if isBreak(at(j)) || at(j) == UInt8(ascii: "#") { blockScalarIndent = lastLineIndent }
      default:
        break
      }
      if !isBlank(c) { lastSignificant = c }
      i += 1
    }
  }

  /// Whether a node may start after `last` (the previous significant character) when the
  /// character right before is `previous`: at a line start, after an indicator or blank.
  static func isNodeStart(_ last: UInt8, previous: UInt8) -> Bool {
    let indicators: [UInt8] = [0x0A, UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: ","), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: "?")]
    let blank = previous == 0x20 || previous == 0x09 || previous == 0x0A
    return indicators.contains(last) && (blank || [UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ",")].contains(previous))
  }

  /// libyaml's anchor characters.
  static func isAnchorChar(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "_")
      || c == UInt8(ascii: "-")
  }

  /// Walks the composed tree, aliases expanded, and throws once it passes `maxNodes`.
  static func countNodes(_ root: Node, file: String, limits: PipelineLimits) throws(PipelineError) {
    var stack = [root]
    var count = 0
    while let node = stack.popLast() {
      count += 1
      if count > limits.maxNodes {
        throw PipelineError(
          .tooLarge, path: file,
          "the YAML expands to more than \(limits.maxNodes) nodes through its aliases (the limit guards against \"billion laughs\" files)",
          hint: PipelineLimits.hint)
      }
      switch node {
      case .mapping(let m):
        for (k, v) in m {
          stack.append(k)
          stack.append(v)
        }
      case .sequence(let s): stack.append(contentsOf: s)
      case .scalar, .alias: break
      }
    }
  }
}
