import SegCore

/// A problem with a pipeline file or its sources: the file, the line, the key and what is
/// wrong, on one line.
public struct PipelineError: UserFacingError, Equatable {
  public enum Code: String, Sendable, CaseIterable {
    /// The file could not be read.
    case unreadable
    /// Not valid YAML.
    case syntax
    /// A key the pipeline format does not have.
    case unknownKey
    /// A required key is missing.
    case missingKey
    /// A value of the wrong type (a string where a number belongs, …).
    case wrongType
    /// A value outside its allowed range.
    case outOfRange
    /// An image without a mask, a mask without an image, or modalities that do not pair up.
    case unpaired
    /// No source files matched.
    case noSources
    /// An image and its mask (or two modalities) differ in size.
    case sizeMismatch
    /// A source file could not be decoded.
    case badSource
    /// The file asks for more than a resource limit allows (refused before allocating).
    case tooLarge
  }

  public var code: Code
  public var path: String?
  public var line: Int?
  /// The key path, e.g. `stages[2].affine.rotate`.
  public var key: String?
  public var message: String
  public var hint: String?

  public init(_ code: Code, path: String?, line: Int? = nil, key: String? = nil, _ message: String, hint: String? = nil) {
    self.code = code
    self.path = path
    self.line = line
    self.key = key
    self.message = message
    self.hint = hint
  }

  /// `FILE:LINE: KEY: MESSAGE (hint: …)`.
  public var description: String {
    var where_ = path ?? "pipeline"
    if let line { where_ += ":\(line)" }
    var text = where_ + ": "
    if let key, !key.isEmpty { text += key + ": " }
    text += message
    if let hint { text += " (hint: \(hint))" }
    return text.replacingNewlines()
  }
}
