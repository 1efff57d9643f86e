import SegCore

/// How a label mask encodes cells.
public enum MaskKind: String, Sendable, Codable, CaseIterable {
  /// Every non-zero id is one cell: all pixels carrying it, connected or not.
  case instances
  /// Non-zero = foreground; the cells are its connected components (e.g. ISBI 2012 membranes,
  /// where white = inside a cell).
  case binary
  /// Values are class ids (0 = background); the cells are the connected components of each
  /// non-zero class, and the class balance uses the class values.
  case classes
  /// `binary` when the mask holds 0 and exactly one other value, `instances` otherwise.
  case auto
}

/// Cells and classes derived from a label mask: an instance id per pixel (0 = background;
/// ids need not be consecutive) and a class per pixel (0 = background).
public struct InstanceMap: Sendable, Equatable {
  public var width: Int
  public var height: Int
  /// Instance id per pixel, row-major; 0 = background.
  public var ids: [UInt32]
  /// Class per pixel, row-major; 0 = background. For instance and binary masks: 1 in cells.
  public var classes: [UInt32]
  /// The kind the mask was read as (never `.auto`).
  public var kind: MaskKind

  public init(width: Int, height: Int, ids: [UInt32], classes: [UInt32], kind: MaskKind) {
    precondition(ids.count == width * height && classes.count == width * height, "InstanceMap size mismatch")
    self.width = width
    self.height = height
    self.ids = ids
    self.classes = classes
    self.kind = kind
  }

  /// Reads a one-channel integer label mask.
  ///
  /// - Parameters:
  ///   - mask: one channel; float masks are truncated to integers.
  ///   - kind: how the values encode cells.
  ///   - connectivity: adjacency for the connected components of `binary` and `classes`.
  public init(mask: Image, kind: MaskKind = .auto, connectivity: Connectivity = .four) {
    precondition(mask.channels == 1, "a label mask has one channel, not \(mask.channels)")
    let values = mask.labelSamples()
    var resolved = kind
    if kind == .auto {
      var other: UInt32? = nil
      var binary = true
      for v in values where v != 0 {
        if other == nil {
          other = v
        } else if v != other {
          binary = false
          break
        }
      }
      resolved = binary ? .binary : .instances
    }
    let w = mask.width
    let h = mask.height
    switch resolved {
    case .instances, .auto:
      self.init(width: w, height: h, ids: values, classes: values.map { $0 == 0 ? 0 : 1 }, kind: .instances)
    case .binary:
      let ids = ConnectedComponents.label(values, width: w, height: h, connectivity: connectivity, splitByValue: false)
      self.init(width: w, height: h, ids: ids, classes: values.map { $0 == 0 ? 0 : 1 }, kind: .binary)
    case .classes:
      let ids = ConnectedComponents.label(values, width: w, height: h, connectivity: connectivity, splitByValue: true)
      self.init(width: w, height: h, ids: ids, classes: values, kind: .classes)
    }
  }

  /// The number of distinct non-zero ids.
  public var cellCount: Int { Set(ids).subtracting([0]).count }
}
