import SegCore
import SegIO

/// Compares a fixture file's decode with the fixture's expectation.
public enum FixtureCheck {
  /// nil when `bytes` decode as `fixture` expects, otherwise what differs (one line).
  public static func problem(_ fixture: Fixture, bytes: [UInt8]?) -> String? {
    guard let bytes else { return "missing (run `unet fixtures`)" }
    let decoded: DecodedImage
    do {
      decoded = try ImageDecoder.decode(bytes, options: fixture.options)
    } catch {
      if let code = fixture.expectedError {
        return error.code == code ? nil : "expected a \(code.rawValue) error, got \(error.code.rawValue): \(error.message)"
      }
      return "decode failed: \(error.message)"
    }
    if let code = fixture.expectedError { return "expected a \(code.rawValue) error, but it decoded" }
    guard decoded.pages.count == fixture.expectedPages.count else {
      return "\(decoded.pages.count) pages, expected \(fixture.expectedPages.count)"
    }
    for (k, (got, want)) in zip(decoded.pages, fixture.expectedPages).enumerated() {
      if let p = difference(got, want, tolerance: fixture.tolerance) { return "page \(k): \(p)" }
    }
    return nil
  }

  /// nil when the images agree within the tolerance.
  public static func difference(_ got: Image, _ want: Image, tolerance: Fixture.Tolerance) -> String? {
    guard got.width == want.width, got.height == want.height, got.channels == want.channels else {
      return "shape \(got.channels)×\(got.height)×\(got.width), expected \(want.channels)×\(want.height)×\(want.width)"
    }
    guard got.pixelType == want.pixelType else {
      return "dtype \(got.pixelType.rawValue), expected \(want.pixelType.rawValue)"
    }
    switch tolerance {
    case .exact:
      if got.storage != want.storage {
        let n = got.sampleCount
        let i = (0..<n).first { got.sampleDouble($0) != want.sampleDouble($0) && !(got.sampleDouble($0).isNaN && want.sampleDouble($0).isNaN) } ?? 0
        return "sample \(i) is \(got.sampleDouble(i)), expected \(want.sampleDouble(i))"
      }
    case .meanAbsolute(let limit):
      var sum = 0.0
      for i in 0..<got.sampleCount { sum += abs(got.sampleDouble(i) - want.sampleDouble(i)) }
      let mean = sum / Double(max(got.sampleCount, 1))
      if mean > limit { return "mean absolute difference \(mean) exceeds \(limit)" }
    }
    return nil
  }
}
