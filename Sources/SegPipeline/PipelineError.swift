import SegCore

/// The codes of ``PipelineError``.
public enum PipelineErrorCode: String, CaseIterable, ErrorCode {
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

  public static var subject: String? { "pipeline" }
}

/// A problem with a pipeline file or its sources: the file, the line, the key and what is
/// wrong, on one line.
public typealias PipelineError = DomainError<PipelineErrorCode>
