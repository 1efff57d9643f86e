import SegCore

/// The codes of ``ImageIOError``.
public enum ImageIOErrorCode: String, CaseIterable, ErrorCode {
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

/// Why an image or array file could not be read or written.
public typealias ImageIOError = DomainError<ImageIOErrorCode>
