// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title The part of ERC-20 that the pool uses.
/// @dev `transfer` and `transferFrom` are never called through this interface: the pool
/// calls them with a low-level call so that tokens which return no bool still work
/// (see `ZkCreditsPool._callToken`). They are declared here for the selectors.
interface IERC20Minimal {
    function balanceOf(address account) external view returns (uint256);

    function transfer(address to, uint256 amount) external returns (bool);

    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}
