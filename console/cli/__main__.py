from console.cli import brahma

brahma()
