// swift-tools-version:6.0
//
// swift-unet: biomedical images and label masks → augmented, tiled U-Net training shards, and
// a U-Net trainer on OpenBLAS. See README.md and ../shared/SPEC.md.
//
// Layout: ARCHITECTURE.md draws the modules and lists each one's dependencies; the lists below
// say the same (Tests/UnetCLITests/ArchitectureTests.swift checks both against the imports).
//   C layer        CPNG CJPEG CTIFF COpenBLAS (system libraries via pkg-config), CCodecShims,
//                  CKernels, CConvKernels, CSystemShims
//   libraries      SegCore at the bottom; each library depends only on ones below it
//   executable     unet (swift-argument-parser)
//   tests          SegTestSupport (shared helpers and naive references) + one bundle per library
import PackageDescription

/// A system library found through pkg-config, with the Debian package that provides it.
func systemLibrary(_ name: String, pkgConfig: String, apt: String) -> Target {
  .systemLibrary(
    name: name, path: "Sources/\(name)", pkgConfig: pkgConfig,
    providers: [.apt([apt])])
}

let package = Package(
  name: "swift-unet",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "unet", targets: ["unet"]),
    .library(name: "SegIO", targets: ["SegIO"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
  ],
  targets: [
    // MARK: - C layer (no stable API; each imported by exactly one Swift target)
    systemLibrary("CPNG", pkgConfig: "libpng", apt: "libpng-dev"),
    systemLibrary("CJPEG", pkgConfig: "libjpeg", apt: "libjpeg-dev"),
    systemLibrary("CTIFF", pkgConfig: "libtiff-4", apt: "libtiff-dev"),
    systemLibrary("COpenBLAS", pkgConfig: "openblas", apt: "libopenblas-dev"),
    .target(
      name: "CCodecShims", dependencies: ["CPNG", "CJPEG", "CTIFF"],
      exclude: ["README.md"]),
    .target(name: "CSystemShims", exclude: ["README.md"]),
    .target(name: "CKernels", exclude: ["README.md"]),
    // Optimised even in debug builds: the tests train small networks through these kernels.
    .target(name: "CConvKernels", exclude: ["README.md"], cSettings: [.unsafeFlags(["-O2"])]),

    // MARK: - Public API
    .target(name: "SegCore", exclude: ["README.md"]),
    .target(name: "SegIO", dependencies: ["SegCore", "CCodecShims"], exclude: ["README.md"]),
    .target(name: "SegSynth", dependencies: ["SegCore", "SegIO"], exclude: ["README.md"]),
    .target(name: "SegWeights", dependencies: ["SegCore"], exclude: ["README.md"]),
    .target(name: "SegModel", exclude: ["README.md"]),
    .target(name: "SegAugment", dependencies: ["SegCore", "CKernels"], exclude: ["README.md"]),
    .target(name: "SegRender", dependencies: ["SegCore"], exclude: ["README.md"]),
    .target(name: "SegTiling", dependencies: ["SegCore", "SegModel"], exclude: ["README.md"]),
    .target(name: "SegCache", dependencies: ["SegCore", "SegIO"], exclude: ["README.md"]),
    .target(
      name: "SegPipeline",
      dependencies: [
        "SegCore", "SegIO", "SegAugment", "SegWeights", "SegModel", "SegTiling", "SegCache", .product(name: "Yams", package: "Yams"),
      ],
      exclude: ["README.md"]),
    .target(name: "SegTrain", dependencies: ["SegCore", "SegModel", "COpenBLAS", "CConvKernels"], exclude: ["README.md"]),
    .target(
      name: "SegExport", dependencies: ["SegCore", "SegIO", "SegAugment", "SegModel", "SegTiling", "SegRender", "SegTrain"],
      exclude: ["README.md"]),
    .target(
      name: "SegWorkflow",
      dependencies: [
        "SegCore", "SegIO", "SegAugment", "SegWeights", "SegModel", "SegTiling", "SegCache", "SegPipeline", "SegRender", "SegTrain",
        "SegExport",
      ],
      exclude: ["README.md"]),
    .target(
      name: "SegPreview",
      dependencies: ["SegCore", "SegIO", "SegAugment", "SegWeights", "SegRender", "SegCache", "SegPipeline"],
      exclude: ["README.md"]),

    // MARK: - Executable
    .executableTarget(
      name: "unet",
      dependencies: [
        "SegCore", "SegIO", "SegSynth", "SegWeights", "SegAugment", "SegModel", "SegTiling", "SegCache", "SegPipeline", "SegRender", "SegPreview", "SegTrain", "SegWorkflow", "CSystemShims",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // MARK: - Test support and unit test bundles
    .target(
      name: "SegTestSupport", dependencies: ["SegCore", "SegAugment"],
      path: "Tests/SegTestSupport"),
    .testTarget(name: "SegCoreTests", dependencies: ["SegCore", "SegTestSupport"]),
    .testTarget(name: "SegIOTests", dependencies: ["SegCore", "SegIO", "SegTestSupport"]),
    .testTarget(name: "SegAugmentTests", dependencies: ["SegCore", "SegAugment", "SegSynth", "SegTestSupport"]),
    .testTarget(
      name: "SegPipelineTests",
      dependencies: ["SegCore", "SegIO", "SegAugment", "SegWeights", "SegModel", "SegPipeline", "SegCache", "SegSynth", "SegTestSupport"],
      exclude: ["Frozen"]),
    .testTarget(name: "SegCacheTests", dependencies: ["SegCore", "SegCache", "SegTestSupport"]),
    .testTarget(name: "SegTilingTests", dependencies: ["SegCore", "SegTiling", "SegTestSupport"]),
    .testTarget(name: "SegModelTests", dependencies: ["SegModel"]),
    .testTarget(name: "SegWeightsTests", dependencies: ["SegCore", "SegIO", "SegWeights", "SegSynth", "SegTestSupport"]),
    .testTarget(
      name: "SegPreviewTests",
      dependencies: ["SegCore", "SegIO", "SegAugment", "SegPipeline", "SegPreview", "SegRender", "SegTestSupport"]),
    .testTarget(name: "SegRenderTests", dependencies: ["SegRender"]),
    .testTarget(
      name: "SegWorkflowTests",
      dependencies: ["SegCore", "SegIO", "SegCache", "SegModel", "SegPipeline", "SegTiling", "SegTrain", "SegWorkflow", "SegTestSupport"],
      exclude: ["Frozen"]),
    .testTarget(name: "SegTrainTests", dependencies: ["SegCore", "SegModel", "SegTrain", "SegTestSupport"]),
    .testTarget(
      name: "SegExportTests", dependencies: ["SegCore", "SegIO", "SegAugment", "SegModel", "SegTrain", "SegExport", "SegTestSupport"]),
    .testTarget(
      name: "UnetCLITests",
      dependencies: ["SegCore", "SegIO", "SegCache", "SegWeights", "SegModel", "SegTiling", "SegTrain", "SegWorkflow", "SegTestSupport", "unet"]),

    // MARK: - Fuzzing (Tests/Fuzz; see .ci/fuzz)
    .target(
      name: "SegFuzzTargets", dependencies: ["SegCore", "SegIO", "SegCache", "SegPipeline", "SegTrain", "SegWorkflow"],
      path: "Tests/Fuzz/Targets"),
    .testTarget(name: "FuzzRegressionTests", dependencies: ["SegCore", "SegFuzzTargets", "SegTestSupport"], path: "Tests/Fuzz/RegressionTests"),
  ]
)

// The libFuzzer binary exists only when .ci/fuzz builds with UNET_FUZZ=1 (it needs
// -sanitize=fuzzer, which supplies main, so a plain `swift build` must not see it).
if Context.environment["UNET_FUZZ"] == "1" {
  package.targets += [
    .target(name: "CFuzzDriver", path: "Tests/Fuzz/Driver"),
    .executableTarget(name: "unet-fuzz", dependencies: ["SegFuzzTargets", "CFuzzDriver"], path: "Tests/Fuzz/Entry"),
  ]
  package.products.append(.executable(name: "unet-fuzz", targets: ["unet-fuzz"]))
}
