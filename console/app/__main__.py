from console.app.entry import brahma

brahma()
