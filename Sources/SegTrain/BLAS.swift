import COpenBLAS

/// The one door to OpenBLAS: single-precision GEMM and the library's thread count.
///
/// This is the only file that imports `COpenBLAS`; nothing outside it sees a C type.
///
/// SegTrain splits its work into disjoint output ranges itself (SegCore's `Parallel`) and calls
/// ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` from several threads at once, each
/// call on its own range. OpenBLAS's own thread pool is therefore pinned to one thread before
/// the first product; two levels of threads would oversubscribe the cores.
public enum BLAS {
  /// Row-major single-precision matrix product C ← α·op(A)·op(B) + β·C.
  ///
  /// op(A) is m × k, op(B) is k × n and C is m × n, all row-major. `lda`, `ldb` and `ldc` are
  /// the row strides (in elements) of A, B and C as stored: for `transA == false` A is stored
  /// m × k (lda ≥ k); for `transA == true` it is stored k × m (lda ≥ m). Likewise for B.
  /// With β = 0, C is not read (it may hold garbage or NaN).
  ///
  /// - Complexity: 2·m·n·k floating-point operations.
  @inline(__always)
  public static func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size \(m)×\(n)×\(k)")
    precondition(lda >= max(1, transA ? m : k), "sgemm: lda \(lda) too small")
    precondition(ldb >= max(1, transB ? k : n), "sgemm: ldb \(ldb) too small")
    precondition(ldc >= max(1, n), "sgemm: ldc \(ldc) too small")
    precondition(m < Int(Int32.max) && n < Int(Int32.max) && k < Int(Int32.max), "sgemm: size overflows Int32")
    _ = pinnedToOneThread
    if m == 0 || n == 0 { return }
    if k == 0 {
      // OpenBLAS handles this, but say what it means: C ← β·C.
      for i in 0..<m {
        let row = c + i * ldc
        for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
      }
      return
    }
    cblas_sgemm(
      CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }

  /// Pins OpenBLAS's own pool to one thread, once, before the first product (OpenBLAS starts
  /// with one thread per core).
  private static let pinnedToOneThread: Bool = {
    openblas_set_num_threads(1)
    return true
  }()

  /// OpenBLAS's build configuration (version, kernel family, threading), for reports.
  public static var configuration: String {
    guard let c = openblas_get_config() else { return "unknown" }
    return String(cString: c)
  }
}
