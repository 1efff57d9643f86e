import SegCore

/// Why a model could not be exported.
public typealias ExportError = DomainError<ExportErrorCode>

/// The codes of ``ExportError``.
public enum ExportErrorCode: String, ErrorCode {
  /// The network or its normalisation cannot be expressed in the requested format.
  case unsupported
  /// A sample image does not suit the network (channels, decoding).
  case badSample = "bad_sample"
  /// The output would exceed a format's size limits.
  case tooLarge = "too_large"
  /// The checkpoint lacks something the export needs.
  case incomplete
}
