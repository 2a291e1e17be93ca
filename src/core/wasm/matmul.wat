;; matmul.wat: the fp32 GEMM kernel behind src/core/matmul.ts, y = x · wᵀ (WebAssembly SIMD).
;; Assembled into matmul-wasm.ts (base64) by scripts/build-matmul-wasm.sh; edit this file, then run it.
;;
;; mm(x, ldx, w, ldw, y, ldy, m0, m1, n0, n1, K) computes, for m in [m0, m1) and n in [n0, n1),
;;   y[m, n] = Σ_k x[m, k] · w[n, k]          (k in [0, K))
;; Pointers are byte addresses in the shared memory; ld* are row strides in BYTES. Rows of x and
;; w are both contiguous along k, so each output is a dot product: the main tile keeps 2 rows of x
;; against 4 rows of w (8 f32x4 accumulators, 11 live vector registers: no spills on x86-64), four
;; floats of k per step; then shuffles reduce each row's 4 accumulators to one vector of 4 outputs
;; (one store), and a scalar tail adds K mod 4 when K is not a multiple of 4.
;; Columns are walked in blocks of 16 rows of w so that those rows stay in L1/L2 while every
;; x row pair of the range passes over them.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; Σ_k x[k]·w[k] for one row pair, SIMD over k, then the K mod 4 tail.
  (func $dot (param $px i32) (param $pw i32) (param $kb4 i32) (param $kb i32) (result f32)
    (local $k i32) (local $a v128) (local $s f32)
    (local.set $a (v128.const f32x4 0 0 0 0))
    (block $done
      (loop $L
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb4)))
        (local.set $a (f32x4.add (local.get $a)
          (f32x4.mul (v128.load (i32.add (local.get $px) (local.get $k)))
                     (v128.load (i32.add (local.get $pw) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $L)))
    (local.set $s (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $a)) (f32x4.extract_lane 1 (local.get $a)))
      (f32.add (f32x4.extract_lane 2 (local.get $a)) (f32x4.extract_lane 3 (local.get $a)))))
    (block $tdone
      (loop $T
        (br_if $tdone (i32.ge_u (local.get $k) (local.get $kb)))
        (local.set $s (f32.add (local.get $s)
          (f32.mul (f32.load (i32.add (local.get $px) (local.get $k)))
                   (f32.load (i32.add (local.get $pw) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $T)))
    (local.get $s))

  ;; Four accumulators → one vector of their four horizontal sums, [Σa0, Σa1, Σa2, Σa3].
  (func $reduce4 (param $a0 v128) (param $a1 v128) (param $a2 v128) (param $a3 v128) (result v128)
    (local $s01 v128) (local $s23 v128)
    ;; [a0.0+a0.2, a0.1+a0.3, a1.0+a1.2, a1.1+a1.3]
    (local.set $s01 (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $a1))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $a1))))
    (local.set $s23 (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a2) (local.get $a3))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a2) (local.get $a3))))
    (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $s01) (local.get $s23))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $s01) (local.get $s23))))

  ;; Add the K mod 4 tail to the four outputs at py (rows pw0, pw0+ldw, ... of w against px).
  (func $tail4 (param $py i32) (param $px i32) (param $pw0 i32) (param $ldw i32) (param $k i32) (param $kb i32)
    (local $j i32) (local $pw i32)
    (local.set $pw (local.get $pw0))
    (block $done
      (loop $J
        (br_if $done (i32.ge_u (local.get $j) (i32.const 4)))
        (f32.store (i32.add (local.get $py) (i32.shl (local.get $j) (i32.const 2)))
          (call $tail (f32.load (i32.add (local.get $py) (i32.shl (local.get $j) (i32.const 2))))
                      (local.get $px) (local.get $pw) (local.get $k) (local.get $kb)))
        (local.set $pw (i32.add (local.get $pw) (local.get $ldw)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $J))))

  ;; Scalar K-tail of one output: s + Σ_{k in [k, kb)} x[k]·w[k].
  (func $tail (param $s f32) (param $px i32) (param $pw i32) (param $k i32) (param $kb i32) (result f32)
    (block $done
      (loop $T
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb)))
        (local.set $s (f32.add (local.get $s)
          (f32.mul (f32.load (i32.add (local.get $px) (local.get $k)))
                   (f32.load (i32.add (local.get $pw) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $T)))
    (local.get $s))

  ;; The 2 × 4 tile: rows px0, px0+ldx of x against rows pw0 .. pw0+3·ldw of w, written to
  ;; py0 (row m) and py0+ldy (row m+1), four consecutive floats each.
  (func $tile2x4 (param $px0 i32) (param $ldx i32) (param $pw0 i32) (param $ldw i32)
                 (param $py0 i32) (param $ldy i32) (param $kb4 i32) (param $kb i32)
    (local $px1 i32) (local $pw1 i32) (local $pw2 i32) (local $pw3 i32) (local $k i32)
    (local $x0 v128) (local $x1 v128) (local $wv v128)
    (local $a00 v128) (local $a01 v128) (local $a02 v128) (local $a03 v128)
    (local $a10 v128) (local $a11 v128) (local $a12 v128) (local $a13 v128)
    (local $py1 i32)
    (local.set $px1 (i32.add (local.get $px0) (local.get $ldx)))
    (local.set $pw1 (i32.add (local.get $pw0) (local.get $ldw)))
    (local.set $pw2 (i32.add (local.get $pw1) (local.get $ldw)))
    (local.set $pw3 (i32.add (local.get $pw2) (local.get $ldw)))
    (block $done
      (loop $L
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb4)))
        (local.set $x0 (v128.load (i32.add (local.get $px0) (local.get $k))))
        (local.set $x1 (v128.load (i32.add (local.get $px1) (local.get $k))))
        (local.set $wv (v128.load (i32.add (local.get $pw0) (local.get $k))))
        (local.set $a00 (f32x4.add (local.get $a00) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $pw1) (local.get $k))))
        (local.set $a01 (f32x4.add (local.get $a01) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $pw2) (local.get $k))))
        (local.set $a02 (f32x4.add (local.get $a02) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $a12 (f32x4.add (local.get $a12) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $pw3) (local.get $k))))
        (local.set $a03 (f32x4.add (local.get $a03) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $a13 (f32x4.add (local.get $a13) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $L)))
    (local.set $py1 (i32.add (local.get $py0) (local.get $ldy)))
    (v128.store (local.get $py0) (call $reduce4 (local.get $a00) (local.get $a01) (local.get $a02) (local.get $a03)))
    (v128.store (local.get $py1) (call $reduce4 (local.get $a10) (local.get $a11) (local.get $a12) (local.get $a13)))
    (if (i32.lt_u (local.get $k) (local.get $kb))
      (then
        (call $tail4 (local.get $py0) (local.get $px0) (local.get $pw0) (local.get $ldw) (local.get $k) (local.get $kb))
        (call $tail4 (local.get $py1) (local.get $px1) (local.get $pw0) (local.get $ldw) (local.get $k) (local.get $kb)))))

  ;; The 1 × 4 tile (the last row when the row count is odd; decode's single row).
  (func $tile1x4 (param $px0 i32) (param $pw0 i32) (param $ldw i32) (param $py0 i32)
                 (param $kb4 i32) (param $kb i32)
    (local $pw1 i32) (local $pw2 i32) (local $pw3 i32) (local $k i32) (local $x0 v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $pw1 (i32.add (local.get $pw0) (local.get $ldw)))
    (local.set $pw2 (i32.add (local.get $pw1) (local.get $ldw)))
    (local.set $pw3 (i32.add (local.get $pw2) (local.get $ldw)))
    (block $done
      (loop $L
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb4)))
        (local.set $x0 (v128.load (i32.add (local.get $px0) (local.get $k))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $pw0) (local.get $k))))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $pw1) (local.get $k))))))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $pw2) (local.get $k))))))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $pw3) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $L)))
    (v128.store (local.get $py0) (call $reduce4 (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3)))
    (if (i32.lt_u (local.get $k) (local.get $kb))
      (then (call $tail4 (local.get $py0) (local.get $px0) (local.get $pw0) (local.get $ldw) (local.get $k) (local.get $kb)))))

  (func $mm (export "mm")
    (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32) (param $y i32) (param $ldy i32)
    (param $m0 i32) (param $m1 i32) (param $n0 i32) (param $n1 i32) (param $K i32)
    (local $kb i32) (local $kb4 i32) (local $nb i32) (local $nbEnd i32) (local $nq i32)
    (local $m i32) (local $n i32) (local $nQuadEnd i32) (local $px i32)
    (local.set $kb (i32.shl (local.get $K) (i32.const 2)))
    (local.set $kb4 (i32.and (local.get $kb) (i32.const -16)))
    ;; the columns that come in whole quads, [n0, nQuadEnd), blocked by 16
    (local.set $nQuadEnd (i32.sub (local.get $n1)
      (i32.and (i32.sub (local.get $n1) (local.get $n0)) (i32.const 3))))
    (local.set $nb (local.get $n0))
    (block $nbDone
      (loop $NB
        (br_if $nbDone (i32.ge_u (local.get $nb) (local.get $nQuadEnd)))
        (local.set $nbEnd (i32.add (local.get $nb) (i32.const 16)))
        (if (i32.gt_u (local.get $nbEnd) (local.get $nQuadEnd))
          (then (local.set $nbEnd (local.get $nQuadEnd))))
        ;; row pairs
        (local.set $m (local.get $m0))
        (block $mDone
          (loop $M
            (br_if $mDone (i32.gt_u (i32.add (local.get $m) (i32.const 2)) (local.get $m1)))
            (local.set $n (local.get $nb))
            (block $qDone
              (loop $Q
                (br_if $qDone (i32.ge_u (local.get $n) (local.get $nbEnd)))
                (call $tile2x4
                  (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $ldx))) (local.get $ldx)
                  (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw))) (local.get $ldw)
                  (i32.add (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ldy)))
                           (i32.shl (local.get $n) (i32.const 2))) (local.get $ldy)
                  (local.get $kb4) (local.get $kb))
                (local.set $n (i32.add (local.get $n) (i32.const 4)))
                (br $Q)))
            (local.set $m (i32.add (local.get $m) (i32.const 2)))
            (br $M)))
        ;; the odd last row
        (if (i32.lt_u (local.get $m) (local.get $m1))
          (then
            (local.set $n (local.get $nb))
            (block $q1Done
              (loop $Q1
                (br_if $q1Done (i32.ge_u (local.get $n) (local.get $nbEnd)))
                (call $tile1x4
                  (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $ldx)))
                  (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw))) (local.get $ldw)
                  (i32.add (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ldy)))
                           (i32.shl (local.get $n) (i32.const 2)))
                  (local.get $kb4) (local.get $kb))
                (local.set $n (i32.add (local.get $n) (i32.const 4)))
                (br $Q1)))))
        (local.set $nb (local.get $nbEnd))
        (br $NB)))
    ;; the last 0..3 columns, one dot product each
    (local.set $m (local.get $m0))
    (block $rDone
      (loop $R
        (br_if $rDone (i32.ge_u (local.get $m) (local.get $m1)))
        (local.set $px (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $ldx))))
        (local.set $n (local.get $nQuadEnd))
        (block $cDone
          (loop $C
            (br_if $cDone (i32.ge_u (local.get $n) (local.get $n1)))
            (f32.store
              (i32.add (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ldy)))
                       (i32.shl (local.get $n) (i32.const 2)))
              (call $dot (local.get $px)
                (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw)))
                (local.get $kb4) (local.get $kb)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $C)))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (br $R))))
;; ---- float64: mm64(x, ldx, w, ldw, y, ldy, m0, m1, n0, n1, K) SUBTRACTS the products,
;;   y[m, n] -= Σ_k x[m, k] · w[n, k]          (k in [0, K), f64, strides in BYTES)
;; for the blocked Cholesky factorization and triangular inverse of GPTQ (src/quant/linalg.ts).
;; 2 × 4 tile of f64x2 accumulators (two k per step; lanes summed lane 0 + lane 1, then the odd
;; last k), 1 × 4 tiles for an odd last row, one dot product per leftover column.

  ;; Σ_k x[k]·w[k] over K values (bytes kb8 = K·8), f64x2 then the odd tail.
  (func $dot64 (param $px i32) (param $pw i32) (param $kb16 i32) (param $kb i32) (result f64)
    (local $k i32) (local $a v128) (local $s f64)
    (local.set $a (v128.const f64x2 0 0))
    (block $done
      (loop $L
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb16)))
        (local.set $a (f64x2.add (local.get $a)
          (f64x2.mul (v128.load (i32.add (local.get $px) (local.get $k)))
                     (v128.load (i32.add (local.get $pw) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $L)))
    (local.set $s (f64.add (f64x2.extract_lane 0 (local.get $a)) (f64x2.extract_lane 1 (local.get $a))))
    (if (i32.lt_u (local.get $k) (local.get $kb))
      (then (local.set $s (f64.add (local.get $s)
        (f64.mul (f64.load (i32.add (local.get $px) (local.get $k)))
                 (f64.load (i32.add (local.get $pw) (local.get $k))))))))
    (local.get $s))

  ;; y[0] -= Σ a (lanes) + the odd tail term, for one output at py.
  (func $sub64 (param $py i32) (param $a v128) (param $px i32) (param $pw i32) (param $k i32) (param $kb i32)
    (local $s f64)
    (local.set $s (f64.add (f64x2.extract_lane 0 (local.get $a)) (f64x2.extract_lane 1 (local.get $a))))
    (if (i32.lt_u (local.get $k) (local.get $kb))
      (then (local.set $s (f64.add (local.get $s)
        (f64.mul (f64.load (i32.add (local.get $px) (local.get $k)))
                 (f64.load (i32.add (local.get $pw) (local.get $k))))))))
    (f64.store (local.get $py) (f64.sub (f64.load (local.get $py)) (local.get $s))))

  (func $tile64 (param $px0 i32) (param $ldx i32) (param $pw0 i32) (param $ldw i32)
                (param $py0 i32) (param $ldy i32) (param $kb16 i32) (param $kb i32) (param $two i32)
    (local $px1 i32) (local $pw1 i32) (local $pw2 i32) (local $pw3 i32) (local $k i32) (local $py1 i32)
    (local $x0 v128) (local $x1 v128) (local $wv v128)
    (local $a00 v128) (local $a01 v128) (local $a02 v128) (local $a03 v128)
    (local $a10 v128) (local $a11 v128) (local $a12 v128) (local $a13 v128)
    ;; a single row reads row 0 twice and stores only row 0
    (local.set $px1 (select (i32.add (local.get $px0) (local.get $ldx)) (local.get $px0) (local.get $two)))
    (local.set $pw1 (i32.add (local.get $pw0) (local.get $ldw)))
    (local.set $pw2 (i32.add (local.get $pw1) (local.get $ldw)))
    (local.set $pw3 (i32.add (local.get $pw2) (local.get $ldw)))
    (block $done
      (loop $L
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb16)))
        (local.set $x0 (v128.load (i32.add (local.get $px0) (local.get $k))))
        (local.set $x1 (v128.load (i32.add (local.get $px1) (local.get $k))))
        (local.set $wv (v128.load (i32.add (local.get $pw0) (local.get $k))))
        (local.set $a00 (f64x2.add (local.get $a00) (f64x2.mul (local.get $x0) (local.get $wv))))
        (local.set $a10 (f64x2.add (local.get $a10) (f64x2.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $pw1) (local.get $k))))
        (local.set $a01 (f64x2.add (local.get $a01) (f64x2.mul (local.get $x0) (local.get $wv))))
        (local.set $a11 (f64x2.add (local.get $a11) (f64x2.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $pw2) (local.get $k))))
        (local.set $a02 (f64x2.add (local.get $a02) (f64x2.mul (local.get $x0) (local.get $wv))))
        (local.set $a12 (f64x2.add (local.get $a12) (f64x2.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $pw3) (local.get $k))))
        (local.set $a03 (f64x2.add (local.get $a03) (f64x2.mul (local.get $x0) (local.get $wv))))
        (local.set $a13 (f64x2.add (local.get $a13) (f64x2.mul (local.get $x1) (local.get $wv))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $L)))
    (call $sub64 (local.get $py0) (local.get $a00) (local.get $px0) (local.get $pw0) (local.get $k) (local.get $kb))
    (call $sub64 (i32.add (local.get $py0) (i32.const 8)) (local.get $a01) (local.get $px0) (local.get $pw1) (local.get $k) (local.get $kb))
    (call $sub64 (i32.add (local.get $py0) (i32.const 16)) (local.get $a02) (local.get $px0) (local.get $pw2) (local.get $k) (local.get $kb))
    (call $sub64 (i32.add (local.get $py0) (i32.const 24)) (local.get $a03) (local.get $px0) (local.get $pw3) (local.get $k) (local.get $kb))
    (if (local.get $two)
      (then
        (local.set $py1 (i32.add (local.get $py0) (local.get $ldy)))
        (call $sub64 (local.get $py1) (local.get $a10) (local.get $px1) (local.get $pw0) (local.get $k) (local.get $kb))
        (call $sub64 (i32.add (local.get $py1) (i32.const 8)) (local.get $a11) (local.get $px1) (local.get $pw1) (local.get $k) (local.get $kb))
        (call $sub64 (i32.add (local.get $py1) (i32.const 16)) (local.get $a12) (local.get $px1) (local.get $pw2) (local.get $k) (local.get $kb))
        (call $sub64 (i32.add (local.get $py1) (i32.const 24)) (local.get $a13) (local.get $px1) (local.get $pw3) (local.get $k) (local.get $kb)))))

  (func $mm64 (export "mm64")
    (param $x i32) (param $ldx i32) (param $w i32) (param $ldw i32) (param $y i32) (param $ldy i32)
    (param $m0 i32) (param $m1 i32) (param $n0 i32) (param $n1 i32) (param $K i32)
    (local $kb i32) (local $kb16 i32) (local $m i32) (local $n i32) (local $nQuadEnd i32) (local $py i32)
    (local.set $kb (i32.shl (local.get $K) (i32.const 3)))
    (local.set $kb16 (i32.and (local.get $kb) (i32.const -16)))
    (local.set $nQuadEnd (i32.sub (local.get $n1)
      (i32.and (i32.sub (local.get $n1) (local.get $n0)) (i32.const 3))))
    (local.set $m (local.get $m0))
    (block $mDone
      (loop $M
        (br_if $mDone (i32.ge_u (local.get $m) (local.get $m1)))
        (local.set $n (local.get $n0))
        (block $qDone
          (loop $Q
            (br_if $qDone (i32.ge_u (local.get $n) (local.get $nQuadEnd)))
            (call $tile64
              (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $ldx))) (local.get $ldx)
              (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw))) (local.get $ldw)
              (i32.add (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ldy)))
                       (i32.shl (local.get $n) (i32.const 3))) (local.get $ldy)
              (local.get $kb16) (local.get $kb)
              (i32.lt_u (i32.add (local.get $m) (i32.const 1)) (local.get $m1)))
            (local.set $n (i32.add (local.get $n) (i32.const 4)))
            (br $Q)))
        ;; leftover columns of these (one or two) rows
        (block $rDone
          (loop $R
            (br_if $rDone (i32.ge_u (local.get $n) (local.get $n1)))
            (local.set $py (i32.add (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ldy)))
                                    (i32.shl (local.get $n) (i32.const 3))))
            (f64.store (local.get $py) (f64.sub (f64.load (local.get $py))
              (call $dot64 (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $ldx)))
                           (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw)))
                           (local.get $kb16) (local.get $kb))))
            (if (i32.lt_u (i32.add (local.get $m) (i32.const 1)) (local.get $m1))
              (then
                (local.set $py (i32.add (local.get $py) (local.get $ldy)))
                (f64.store (local.get $py) (f64.sub (f64.load (local.get $py))
                  (call $dot64 (i32.add (local.get $x) (i32.mul (i32.add (local.get $m) (i32.const 1)) (local.get $ldx)))
                               (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $ldw)))
                               (local.get $kb16) (local.get $kb))))))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $R)))
        (local.set $m (i32.add (local.get $m) (i32.const 2)))
        (br $M))))
)
