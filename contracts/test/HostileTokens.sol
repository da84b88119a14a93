// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title Test helpers, never deployed for real: tokens that break the pool's assumptions,
/// to reach the reverts TestToken cannot (TransferAmountMismatch, TokenCallFailed,
/// Reentrancy).
contract HostileToken {
    /// 0: honest; 1: keeps 1% of every transferFrom (fee on transfer); 2: transferFrom
    /// returns false; 3: transferFrom calls back into `target` with `callback`.
    uint256 public mode;
    address public target;
    bytes public callback;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function setMode(uint256 mode_, address target_, bytes calldata callback_) external {
        mode = mode_;
        target = target_;
        callback = callback_;
    }

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        if (mode == 2) return false;
        if (mode == 3) {
            (bool ok, bytes memory ret) = target.call(callback);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        uint256 fee = mode == 1 ? amount / 100 : 0;
        balanceOf[to] += amount - fee;
        return true;
    }
}
