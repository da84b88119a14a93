// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title BabyJubJub point checks for receipt keys (circomlib's curve: a = 168700,
/// d = 168696 over the BN254 scalar field, prime subgroup of order L, cofactor 8).
/// @notice A receipt key must be a non-identity point of the prime-order subgroup: a
/// point of small order (or with a small-order part that the verifier's cofactor clears)
/// would let anyone forge receipts under it. Used once per accepted key, so the subgroup
/// test is a plain double-and-add of L in projective coordinates (about 130k gas).
library BabyJubJub {
    uint256 internal constant P = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant A = 168700;
    uint256 internal constant D = 168696;
    /// @notice The order of the prime subgroup.
    uint256 internal constant L = 2736030358979909402780800718157159386076813972158567259200215660948447373041;

    /// @notice Whether (x, y) is on the curve: a x^2 + y^2 = 1 + d x^2 y^2.
    function onCurve(uint256 x, uint256 y) internal pure returns (bool) {
        if (x >= P || y >= P) return false;
        uint256 x2 = mulmod(x, x, P);
        uint256 y2 = mulmod(y, y, P);
        uint256 lhs = addmod(mulmod(A, x2, P), y2, P);
        uint256 rhs = addmod(1, mulmod(D, mulmod(x2, y2, P), P), P);
        return lhs == rhs;
    }

    /// @notice Whether (x, y) is a valid receipt key: on the curve, not the identity, and
    /// of order L.
    function isSubgroupKey(uint256 x, uint256 y) internal pure returns (bool) {
        if (!onCurve(x, y)) return false;
        if (x == 0 && y == 1) return false;
        uint256[3] memory q = _mul(x, y, L);
        // [L]P is the identity (0 : 1 : 1) up to scaling: X = 0 and Y = Z.
        return q[2] != 0 && q[0] == 0 && q[1] == q[2];
    }

    /// @dev [k](x, y) by double-and-add from the top bit, in homogeneous projective
    /// coordinates (X : Y : Z) (the curve is complete: a is a square and d is not, so
    /// neither formula has an exceptional case).
    function _mul(uint256 x, uint256 y, uint256 k) private pure returns (uint256[3] memory q) {
        q[0] = 0;
        q[1] = 1;
        q[2] = 1;
        for (uint256 i = 256; i > 0; --i) {
            _double(q);
            if ((k >> (i - 1)) & 1 == 1) _addAffine(q, x, y);
        }
    }

    /// @dev q = 2q, projective doubling ("dbl-2008-bbjlp").
    function _double(uint256[3] memory q) private pure {
        uint256 b = mulmod(addmod(q[0], q[1], P), addmod(q[0], q[1], P), P);
        uint256 c = mulmod(q[0], q[0], P);
        uint256 d = mulmod(q[1], q[1], P);
        uint256 e = mulmod(A, c, P);
        uint256 f = addmod(e, d, P);
        uint256 j = addmod(f, P - mulmod(2, mulmod(q[2], q[2], P), P), P);
        q[0] = mulmod(addmod(b, P - addmod(c, d, P), P), j, P);
        q[1] = mulmod(f, addmod(e, P - d, P), P);
        q[2] = mulmod(f, j, P);
    }

    /// @dev q = q + (x, y), the unified addition with Z2 = 1 ("madd-2008-bbjlp").
    function _addAffine(uint256[3] memory q, uint256 x, uint256 y) private pure {
        uint256 c = mulmod(q[0], x, P);
        uint256 d = mulmod(q[1], y, P);
        uint256 e = mulmod(D, mulmod(c, d, P), P);
        uint256 b = mulmod(q[2], q[2], P);
        uint256 f = addmod(b, P - e, P);
        uint256 g = addmod(b, e, P);
        uint256 s = addmod(mulmod(addmod(q[0], q[1], P), addmod(x, y, P), P), P - addmod(c, d, P), P);
        q[0] = mulmod(mulmod(q[2], f, P), s, P);
        q[1] = mulmod(mulmod(q[2], g, P), addmod(d, P - mulmod(A, c, P), P), P);
        q[2] = mulmod(f, g, P);
    }
}
