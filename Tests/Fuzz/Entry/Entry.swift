// The libFuzzer entry point: one binary for every target, chosen by UNET_FUZZ_TARGET (png,
// jpeg, tiff, npy, mask, yaml, tar, manifest, checkpoint). Built only by `.ci/fuzz`
// (`UNET_FUZZ=1 swift build -Xswiftc -sanitize=fuzzer,address ...`); libFuzzer provides main.
import SegFuzzTargets

#if canImport(Glibc)
  import Glibc
#endif

/// The target named by UNET_FUZZ_TARGET (read once).
let selected: FuzzTarget = {
  let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
  guard let raw = getenv("UNET_FUZZ_TARGET"), let target = FuzzTarget(rawValue: String(cString: raw)) else {
    fatalError("set UNET_FUZZ_TARGET to one of: \(names)")
  }
  return target
}()

@c(LLVMFuzzerTestOneInput)
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  selected.run(bytes)
  return 0
}
