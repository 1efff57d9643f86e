import SegCore

/// Why a model could not be exported.
public struct ExportError: UserFacingError, Equatable {
  public enum Code: String, Sendable, Equatable {
    /// The network or its normalisation cannot be expressed in the requested format.
    case unsupported
    /// A sample image does not suit the network (channels, decoding).
    case badSample = "bad_sample"
    /// The output would exceed a format's size limits.
    case tooLarge = "too_large"
    /// The checkpoint lacks something the export needs.
    case incomplete
  }

  public var code: Code
  public var path: String?
  public var message: String
  public var hint: String?

  public init(_ code: Code, path: String?, _ message: String, hint: String? = nil) {
    self.code = code
    self.path = path
    self.message = message
    self.hint = hint
  }
}
