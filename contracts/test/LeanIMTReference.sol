// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {InternalLeanIMT, LeanIMTData} from "@zk-kit/lean-imt.sol/InternalLeanIMT.sol";
import {PoseidonT3} from "poseidon-solidity/PoseidonT3.sol";
import {PoseidonT5} from "poseidon-solidity/PoseidonT5.sol";

/// @title Test helper, never deployed for real: the zk-kit LeanIMT fed the same leaves as
/// the pool (its roots must match the pool's), and the Poseidon hashes the pool uses.
contract LeanIMTReference {
    using InternalLeanIMT for LeanIMTData;

    LeanIMTData internal _tree;

    function insert(uint256 leaf) external returns (uint256) {
        return _tree._insert(leaf);
    }

    function root() external view returns (uint256) {
        return _tree._root();
    }

    function size() external view returns (uint256) {
        return _tree.size;
    }

    function hash2(uint256 a, uint256 b) external pure returns (uint256) {
        return PoseidonT3.hash([a, b]);
    }

    function hash4(uint256 a, uint256 b, uint256 c, uint256 d) external pure returns (uint256) {
        return PoseidonT5.hash([a, b, c, d]);
    }
}
