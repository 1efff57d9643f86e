/// An error meant for the person running the tool: one line that names the file and the
/// problem, and optionally a hint saying how to fix it.
///
/// Every domain (image IO, pipelines, shards, checkpoints) has its own error struct with a
/// closed set of codes; all of them conform to this protocol so the CLI prints them alike.
public protocol UserFacingError: Error, CustomStringConvertible, Sendable {
  /// The file the error is about, when there is one.
  var path: String? { get }
  /// What is wrong, without the path (one line, no trailing full stop).
  var message: String { get }
  /// How to fix it, when we know.
  var hint: String? { get }
}

extension UserFacingError {
  /// `PATH: MESSAGE (hint: HINT)` on one line.
  public var description: String {
    var line = path.map { "\($0): \(message)" } ?? message
    if let hint { line += " (hint: \(hint))" }
    return line.replacingNewlines()
  }
}

extension String {
  /// The string with line breaks replaced by spaces, so an error stays on one line.
  public func replacingNewlines() -> String {
    String(map { $0.isNewline ? " " : $0 })
  }
}
