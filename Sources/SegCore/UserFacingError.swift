/// An error meant for the person running the tool: one line that names the file and the
/// problem, and optionally a hint saying how to fix it.
///
/// The CLI prints every error of this kind alike (`unet: LINE`). All of the code base's errors
/// are ``DomainError``s, one code enum per domain (image IO, files, pipelines, shards,
/// checkpoints, workflows).
public protocol UserFacingError: Error, CustomStringConvertible, Sendable {
  /// The file the error is about, when there is one.
  var path: String? { get }
  /// What is wrong, without the path (one line, no trailing full stop).
  var message: String { get }
  /// How to fix it, when we know.
  var hint: String? { get }
}

/// The codes of one domain's errors: a closed set, so callers can switch over them.
public protocol ErrorCode: Hashable, Sendable {
  /// What an error of this domain without a path is about (`pipeline`), printed in the path's
  /// place; nil prints the message alone.
  static var subject: String? { get }
}

extension ErrorCode {
  public static var subject: String? { nil }
}

/// The one shape of the code base's errors: a domain's code, the file, where in it (line and
/// key, for files people write), what is wrong and how to fix it.
///
/// Each domain names its own: `typealias CacheError = DomainError<CacheErrorCode>`.
public struct DomainError<C: ErrorCode>: UserFacingError, Equatable {
  /// The domain's codes (`CacheError.Code`).
  public typealias Code = C

  public var code: Code
  public var path: String?
  /// The line in `path` (1-based), for text files such as pipelines.
  public var line: Int?
  /// The key path in `path`, e.g. `stages[2].affine.rotate`.
  public var key: String?
  public var message: String
  public var hint: String?

  public init(_ code: Code, path: String? = nil, line: Int? = nil, key: String? = nil, _ message: String, hint: String? = nil) {
    self.code = code
    self.path = path
    self.line = line
    self.key = key
    self.message = message
    self.hint = hint
  }

  /// The same error, naming `path`.
  public func at(_ path: String) -> DomainError {
    var e = self
    e.path = path
    return e
  }

  /// `PATH[:LINE]: [KEY: ]MESSAGE (hint: HINT)` on one line.
  public var description: String {
    var text = ""
    if let subject = path ?? Code.subject {
      text = subject + (line.map { ":\($0)" } ?? "") + ": "
    }
    if let key, !key.isEmpty { text += key + ": " }
    text += message
    if let hint { text += " (hint: \(hint))" }
    return text.replacingNewlines()
  }
}

extension String {
  /// The string with line breaks replaced by spaces, so an error stays on one line.
  public func replacingNewlines() -> String {
    String(map { $0.isNewline ? " " : $0 })
  }
}
