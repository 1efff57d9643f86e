import SegCore

/// Why an image or array file could not be read or written.
public struct ImageIOError: UserFacingError, Equatable {
  public enum Code: String, Sendable, CaseIterable {
    /// The file could not be opened or read.
    case unreadable
    /// The bytes are not any format we know.
    case unknownFormat
    /// The data ends early.
    case truncated
    /// The data is damaged (bad checksum, bad marker, inconsistent header).
    case corrupt
    /// A valid file in a layout we do not decode (e.g. 12-bit JPEG).
    case unsupported
    /// The declared size exceeds the pixel budget (checked before allocating).
    case tooLarge
    /// An encoder was given an image it cannot write (wrong type or channel count).
    case cannotEncode
  }

  public var code: Code
  public var path: String?
  public var message: String
  public var hint: String?

  public init(_ code: Code, path: String? = nil, _ message: String, hint: String? = nil) {
    self.code = code
    self.path = path
    self.message = message
    self.hint = hint
  }

  /// The same error, naming `path`.
  public func at(_ path: String) -> ImageIOError {
    var e = self
    e.path = path
    return e
  }
}
